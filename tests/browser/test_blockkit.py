"""The Block Kit drawing used for the Slack screenshots: it shows what Slack would, and an
agent's words in a message stay text."""

from __future__ import annotations

import pytest

from .blockkit import mrkdwn, page


def test_mrkdwn_bold_code_and_links() -> None:
    got = mrkdwn("*refund.issue* for `acct_42`: <https://x.example/r/1|Open in console>")
    assert got == (
        "<b>refund.issue</b> for <code>acct_42</code>: "
        '<a href="https://x.example/r/1">Open in console</a>'
    )


def test_an_agents_markup_stays_text() -> None:
    got = page([{"type": "section", "text": {"type": "mrkdwn", "text": "<script>x</script>"}}])
    assert "<script>x" not in got
    assert "&lt;script&gt;x&lt;/script&gt;" in got


def test_a_block_it_cannot_draw_is_refused() -> None:
    with pytest.raises(ValueError, match="'video'"):
        page([{"type": "video"}])
