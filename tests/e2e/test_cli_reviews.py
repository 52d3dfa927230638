"""`signoff reviews ...` as a reviewer runs it: a real process against a real server.

Dev mode: the bearer token names the caller, and every caller has every role.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import sys

import pytest

from signoff import pb
from signoff.cli.output import diff, humanize
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from .conftest import ServerHandle

R = pb.review
SIGNOFF = [sys.executable, "-m", "signoff.cli.main", "reviews"]


async def _cli(
    server: ServerHandle | None, *args: str, token: str = "alice", env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    base["SIGNOFF_TOKEN"] = token
    if server is not None:
        base["SIGNOFF_SERVER"] = server.target
    proc = await asyncio.create_subprocess_exec(
        *SIGNOFF,
        *args,
        # Not a terminal: `modify` must not wait for a confirmation nobody will type.
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**base, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def _refund(server: ServerHandle, amount: float = 750, who: str = "bot") -> str:
    req = pb.common.ActionRequest(justification="double charge on order 1234")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": amount, "currency": "EUR", "card_number": "4111"})
    req.principal.id = who
    req.resource.kind = "account"
    req.resource.id = "acct_9"
    req.context.update({"ticket": "T-77"})
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    d = stub.Evaluate(req, metadata=(("authorization", f"Bearer {who}"),))
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    return d.review_id


def _get(server: ServerHandle, review_id: str) -> R.Review:
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    return stub.GetReview(
        R.GetReviewRequest(review_id=review_id), metadata=(("authorization", "Bearer carol"),)
    )


def _approve_as(server: ServerHandle, review_id: str, who: str) -> None:
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    req = R.SubmitReviewRequest(review_id=review_id, verdict=R.VERDICT_APPROVE, expected_version=1)
    stub.SubmitReview(req, metadata=(("authorization", f"Bearer {who}"),))


async def test_list_shows_the_pending_refund_review(server):
    review_id = _refund(server)
    code, out, err = await _cli(server, "list")
    assert (code, err) == (0, "")
    header, _, row, *_ = out.splitlines()
    assert header.split()[:4] == ["id", "group", "action", "params"]
    assert row.split()[:3] == [review_id[-8:], "finance", "refund.issue"]
    assert "amount=750 currency=EUR" in row
    assert "Refund above 500" in row
    assert "bot" in row


async def test_list_filters_reach_the_server(server):
    _refund(server)
    code, out, _ = await _cli(server, "list", "--action", "email.*", "--older-than", "1h")
    assert code == 0
    assert out.strip() == "no reviews match"


async def test_list_json_is_one_review_per_line(server):
    first, second = _refund(server), _refund(server, amount=900)
    code, out, _ = await _cli(server, "list", "--json", "--newest")
    assert code == 0
    reviews = [json.loads(line) for line in out.splitlines()]
    assert [r["review_id"] for r in reviews] == [second, first]
    assert reviews[0]["request"]["action"]["params"]["amount"] == 900
    assert reviews[0]["state"] == "REVIEW_STATE_PENDING"


async def test_list_pages_only_when_asked(server):
    ids = [_refund(server, amount=600 + i) for i in range(3)]
    code, out, _ = await _cli(server, "list", "--limit", "2")
    assert code == 0
    assert "more on the next page" in out
    assert ids[2][-8:] not in out
    code, out, _ = await _cli(server, "list", "--limit", "2", "--all-pages", "--json")
    assert [json.loads(line)["review_id"] for line in out.splitlines()] == ids


async def test_show_prints_everything_a_reviewer_needs(server):
    review_id = _refund(server)
    code, out, _ = await _cli(server, "show", review_id[-8:])
    assert code == 0
    assert review_id in out
    assert "Refund above 500 needs a finance reviewer." in out
    assert '"amount": 750' in out
    assert '"card_number": "[REDACTED]"' in out
    assert "redacted: action.params.card_number" in out
    assert "double charge on order 1234" in out
    assert '"ticket": "T-77"' in out
    assert "refunds.yaml:" in out
    assert "large-refund  REVIEW" in out
    assert "PENDING (version 1)" in out
    assert "approvals      0 of 1" in out


async def test_show_json_parses(server):
    review_id = _refund(server)
    code, out, _ = await _cli(server, "show", review_id, "--json")
    assert code == 0
    assert json.loads(out)["reviewer_group"] == "finance"


async def test_approve_resolves_the_review(server):
    review_id = _refund(server)
    code, out, err = await _cli(server, "approve", review_id[-8:], "--comment", "ok per T-77")
    assert (code, err) == (0, "")
    assert "now APPROVED by alice" in out
    r = _get(server, review_id)
    assert r.state == R.REVIEW_STATE_APPROVED
    assert (r.acts[0].reviewer, r.acts[0].comment) == ("alice", "ok per T-77")


async def test_token_and_server_come_from_flags_too(server):
    review_id = _refund(server)
    code, _, _ = await _cli(
        None,
        "approve",
        review_id,
        "--server",
        server.target,
        "--token",
        "dave",
        env={"SIGNOFF_TOKEN": "mallory"},
    )
    assert code == 0
    assert _get(server, review_id).acts[0].reviewer == "dave"


async def test_modify_shows_the_diff_and_submits_the_edit(server):
    review_id = _refund(server)
    edited = {"amount": 500, "currency": "EUR", "card_number": "[REDACTED]", "note": "capped"}
    code, out, err = await _cli(
        server, "modify", review_id[:13], "--params", json.dumps(edited), "--comment", "cap"
    )
    assert (code, err) == (0, "")
    assert "~ amount: 750 -> 500" in out
    assert '+ note: "capped"' in out
    assert "now MODIFIED by alice" in out
    r = _get(server, review_id)
    assert r.state == R.REVIEW_STATE_MODIFIED
    assert r.final_params["amount"] == 500
    assert r.acts[0].comment == "cap"


async def test_modify_with_json_keeps_stdout_for_the_result(server, tmp_path):
    review_id = _refund(server)
    path = tmp_path / "edit.json"
    path.write_text('{"amount": 400, "currency": "EUR"}')
    code, out, err = await _cli(server, "modify", review_id, "--params-file", str(path), "--json")
    assert code == 0
    assert "~ amount: 750 -> 400" in err
    assert json.loads(out)["final_params"]["amount"] == 400


async def test_modify_with_unchanged_params_is_refused(server):
    review_id = _refund(server)
    same = {"amount": 750, "currency": "EUR", "card_number": "[REDACTED]"}
    code, _, err = await _cli(server, "modify", review_id, "--params", json.dumps(same))
    assert code == 2
    assert "use `approve` instead" in err
    assert _get(server, review_id).state == R.REVIEW_STATE_PENDING


async def test_reject_with_comment(server):
    review_id = _refund(server)
    code, out, _ = await _cli(server, "reject", review_id, "--comment", "duplicate refund")
    assert code == 0
    assert "now REJECTED by alice" in out
    r = _get(server, review_id)
    assert r.state == R.REVIEW_STATE_REJECTED
    assert r.acts[0].comment == "duplicate refund"


async def test_cancel_by_the_requesting_agent(server):
    review_id = _refund(server, who="bot")
    code, out, _ = await _cli(
        server, "cancel", review_id[-8:], "--reason", "customer withdrew", token="bot"
    )
    assert code == 0
    assert "now CANCELLED: customer withdrew" in out
    r = _get(server, review_id)
    assert r.state == R.REVIEW_STATE_CANCELLED
    assert r.resolution_note == "customer withdrew"


async def test_a_stale_version_is_refused_by_the_server_and_explained(server):
    review_id = _refund(server)
    code, out, _ = await _cli(server, "show", review_id)
    assert "version 1" in out
    _approve_as(server, review_id, "carol")  # someone else acts after alice looked
    code, out, err = await _cli(server, "reject", review_id, "--version", "1")
    assert (code, out) == (1, "")
    assert err.strip() == (
        "signoff: review changed since you looked at it (now APPROVED by carol); "
        f"run `signoff reviews show {review_id}`"
    )
    assert _get(server, review_id).state == R.REVIEW_STATE_APPROVED


async def test_acting_on_a_resolved_review_names_who_resolved_it(server):
    review_id = _refund(server)
    _approve_as(server, review_id, "carol")
    code, _, err = await _cli(server, "approve", review_id[-8:])
    assert code == 1
    assert f"review {review_id} is already APPROVED by carol" in err


async def test_self_approval_is_refused_clearly(server):
    review_id = _refund(server, who="bot")
    code, _, err = await _cli(server, "approve", review_id, token="bot")
    assert code == 1
    assert err.startswith("signoff: permission denied: separation of duties")


@pytest.mark.parametrize("ref", ["01890000-0000-7000-8000-000000000000", "nope"])
async def test_unknown_review_is_not_found(server, ref):
    _refund(server)
    code, out, err = await _cli(server, "show", ref)
    assert (code, out) == (1, "")
    assert "not found" in err
    assert "Traceback" not in err


async def test_an_ambiguous_short_id_lists_the_matches(server):
    first, second = _refund(server), _refund(server, amount=900)
    prefix = first[: next(i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)]
    assert prefix  # UUIDv7s of one test share at least their leading timestamp digit
    code, _, err = await _cli(server, "approve", prefix)
    assert code == 1
    assert "ambiguous" in err
    assert first in err
    assert second in err


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ('{"amount": 5OO}', "--params: not valid JSON: Expecting ',' delimiter"),
        ("[500]", "--params: must be a JSON object of params, not list"),
        ('{"amount": NaN}', "--params: not valid JSON: NaN is not a JSON number"),
    ],
)
async def test_bad_params_are_a_usage_error_naming_the_problem(server, params, problem):
    review_id = _refund(server)
    code, _, err = await _cli(server, "modify", review_id, "--params", params)
    assert code == 2
    assert problem in err
    assert _get(server, review_id).state == R.REVIEW_STATE_PENDING


async def test_bad_flags_are_usage_errors(server):
    code, _, err = await _cli(server, "list", "--older-than", "soon")
    assert code == 2
    assert "argument --older-than: 'soon': not a duration; use a number and a unit" in err


async def test_server_down_is_exit_3():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    code, out, err = await _cli(None, "list", "--server", f"127.0.0.1:{port}", "--timeout", "5")
    assert (code, out) == (3, "")
    assert err.startswith(f"signoff: cannot reach the server at 127.0.0.1:{port}")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (180, "3m"), (7500, "2h 5m"), (7505, "2h 5m"), (100800, "1d 4h")],
)
def test_durations_read_as_two_units(seconds, text):
    assert humanize(dt.timedelta(seconds=seconds)) == text


def test_params_diff_names_each_changed_path():
    old = {"amount": 750.0, "meta": {"ticket": "T-1", "tags": ["a"]}, "gone": True}
    new = {"amount": 500, "meta": {"ticket": "T-2", "tags": ["a"]}, "note": "x"}
    assert diff(old, new) == [
        "~ amount: 750 -> 500",
        "- gone: true",
        '~ meta.ticket: "T-1" -> "T-2"',
        '+ note: "x"',
    ]
