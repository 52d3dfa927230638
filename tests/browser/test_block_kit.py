"""The Block Kit drawing used for the Slack screenshots: it shows what Slack would, and an
agent's words in a message stay text."""

from __future__ import annotations

import pytest

from .block_kit import mrkdwn, page


def test_mrkdwn_bold_and_code() -> None:
    assert mrkdwn("*refund.issue* for `acct_42`") == (
        "<b>refund.issue</b> for <code>acct_42</code>"
    )


def test_an_agents_markup_stays_text() -> None:
    got = page({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "<script>x"}}]})
    assert "<script>x" not in got
    assert "&lt;script&gt;x" in got


def test_a_block_it_cannot_draw_is_refused() -> None:
    with pytest.raises(AssertionError, match="video is not drawn"):
        page({"blocks": [{"type": "video"}]})
