"""`signoff reviews approve|reject` with several reviews (one SubmitReviews batch), as a real
process against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from signoff import pb

from .test_cli_reviews import _approve_as, _cli, _get, _refund

R = pb.review


async def test_approve_several_ids_is_one_batch_with_a_row_each(server):
    ids = [_refund(server, amount=600 + i) for i in range(3)]
    code, out, err = await _cli(server, "approve", *(i[-8:] for i in ids), "--comment", "same")
    assert (code, err) == (0, "")
    for rid in ids:
        row = next(line for line in out.splitlines() if line.startswith(rid))
        assert "refund.issue" in row
        assert "APPROVED" in row.upper()
        assert _get(server, rid).state == R.REVIEW_STATE_APPROVED
    assert "3 of 3 done (batch " in out
    entries = server.call(server.running.app.store.read_audit(1, 10_000))
    batch = {e.payload.get("batch_id") for e in entries if e.type == "review.approved"}
    assert len(batch) == 1
    assert None not in batch


async def test_a_refused_review_shows_in_its_row_and_exits_1(server):
    done, fresh = _refund(server), _refund(server, amount=900)
    code, out, _ = await _cli(server, "reject", done, fresh, "--comment", "loop", "--json")
    assert code == 0
    _approve_as(server, (again := _refund(server)), "carol")
    code, out, _ = await _cli(server, "approve", again, _refund(server, amount=800), "--json")
    assert code == 1
    result = json.loads(out)
    assert result["succeeded"] == 1
    refused = next(r for r in result["results"] if r["review_id"] == again)
    assert refused["error_code"] == "FAILED_PRECONDITION"
    assert "is APPROVED" in refused["error_message"]
    assert _get(server, done).state == R.REVIEW_STATE_REJECTED
    assert _get(server, fresh).acts[-1].comment == "loop"


async def test_all_like_acts_on_the_pending_reviews_of_the_same_action_and_rule(server):
    ids = [_refund(server, amount=600 + i) for i in range(4)]
    _approve_as(server, ids[0], "carol")
    code, out, err = await _cli(
        server, "reject", "--all-like", ids[2][-8:], "--comment", "bot loop", "--json"
    )
    assert (code, err) == (0, "")
    assert [r["review_id"] for r in json.loads(out)["results"]] == ids[1:]
    assert {_get(server, rid).state for rid in ids[1:]} == {R.REVIEW_STATE_REJECTED}
    assert _get(server, ids[0]).state == R.REVIEW_STATE_APPROVED


async def test_bad_batches_are_refused_before_anything_is_sent(server):
    a, b = _refund(server), _refund(server, amount=900)
    code, _, err = await _cli(server, "reject", a, b)
    assert code == 2
    assert "rejecting several reviews needs --comment" in err
    code, _, err = await _cli(server, "approve", a, b, "--version", "1")
    assert code == 2
    assert "--version names one review's version" in err
    code, _, err = await _cli(server, "approve", a, "--all-like", b)
    assert code == 2
    assert "not both" in err
    code, _, err = await _cli(server, "approve", a, a[-8:])
    assert code == 2
    assert f"names review {a} twice" in err
    code, _, err = await _cli(server, "approve")
    assert code == 2
    assert "give a review id" in err
    assert {_get(server, rid).state for rid in (a, b)} == {R.REVIEW_STATE_PENDING}
