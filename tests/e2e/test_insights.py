"""Policy insights through a real server: GetInsights and `signoff policy insights`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import grpc
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc, policy_pb2_grpc, review_pb2_grpc

from .conftest import FakeClock, MakeServer, ServerHandle

R = pb.review
P = pb.policy
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
WINDOW = ("--since", "2026-01-01", "--until", "2026-01-03")


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


def _refund(server: ServerHandle) -> str:
    req = pb.common.ActionRequest(justification="double charge")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": 750, "currency": "EUR"})
    req.principal.id = "bot"
    req.resource.kind = "account"
    req.resource.id = "acct_9"
    d = decision_pb2_grpc.DecisionServiceStub(server.channel()).Evaluate(req, metadata=_md("bot"))
    assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    return d.review_id


def _act(server: ServerHandle, review_id: str, verdict: int, who: str) -> None:
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    req = R.SubmitReviewRequest(review_id=review_id, verdict=verdict, expected_version=1)
    stub.SubmitReview(req, metadata=_md(who))


def _cli(server: ServerHandle, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env |= {"SIGNOFF_SERVER": server.target, "SIGNOFF_TOKEN": "auditor"}
    cmd = [sys.executable, "-m", "signoff.cli.main", "policy", "insights", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture
def history(make_server: MakeServer, backend: str) -> ServerHandle:
    """Four large refunds opened at T0: approved after 60 s (alice), rejected after 120 s
    (bob), approved after 300 s (alice), and one left to expire after its 1d timeout."""
    clock = FakeClock(T0)
    server = make_server(clock=clock, backend=backend)
    ids = [_refund(server) for _ in range(4)]
    for review_id, wait, verdict, who in (
        (ids[0], 60, R.VERDICT_APPROVE, "alice"),
        (ids[1], 60, R.VERDICT_REJECT, "bob"),
        (ids[2], 180, R.VERDICT_APPROVE, "alice"),
    ):
        clock.advance(seconds=wait)
        _act(server, review_id, verdict, who)
    clock.advance(days=1)
    assert server.call(server.running.app.reviews.sweep()) == 1
    return server


def _insights(server: ServerHandle, **fields: object) -> P.Insights:
    req = P.GetInsightsRequest(**fields)  # type: ignore[arg-type]
    req.since.FromDatetime(T0 - dt.timedelta(hours=1))
    stub = policy_pb2_grpc.PolicyServiceStub(server.channel())
    return stub.GetInsights(req, metadata=_md("auditor"))


def test_insights_count_time_reviewers_and_disagreement_per_rule(history: ServerHandle) -> None:
    out = _insights(history, min_reviews=4, expired_share=0.25)
    assert out.reviews == 4
    assert not out.truncated
    [row] = out.rules
    assert (row.policy, row.rule, row.file) == ("refunds", "large-refund", "refunds.yaml")
    assert row.line > 0
    counts = (row.reviews, row.approved_unchanged, row.edited, row.rejected, row.expired)
    assert counts == (4, 2, 0, 1, 1)
    assert (row.cancelled, row.pending) == (0, 0)
    assert (row.median_s, row.p90_s) == (120, 300)
    assert row.reviewers == 2
    assert (row.compared, round(row.disagreement, 3)) == (3, 0.333)
    assert [f.kind for f in row.flags] == ["needs_more_reviewers_or_time"]


def test_insights_filter_by_group_and_window(history: ServerHandle) -> None:
    assert _insights(history, reviewer_group="legal").reviews == 0
    assert _insights(history, reviewer_group="finance").reviews == 4
    req = P.GetInsightsRequest()
    req.since.FromDatetime(T0 + dt.timedelta(seconds=1))
    stub = policy_pb2_grpc.PolicyServiceStub(history.channel())
    assert list(stub.GetInsights(req, metadata=_md("auditor")).rules) == []


def test_insights_refuse_a_request_without_since(history: ServerHandle) -> None:
    stub = policy_pb2_grpc.PolicyServiceStub(history.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.GetInsights(P.GetInsightsRequest(), metadata=_md("auditor"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "since: is required" in (err.value.details() or "")


def test_cli_prints_the_table_flags_and_the_replay_command(history: ServerHandle) -> None:
    got = _cli(history, *WINDOW, "--min-reviews", "4", "--auto-allow-share", "0.5")
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert lines[0] == "reviews opened 2026-01-01T00:00:00Z .. 2026-01-03T00:00:00Z: 4"
    assert lines[2].split() == [
        *("RULE", "AT", "REVIEWS", "APPROVED", "EDITED", "REJECTED", "EXPIRED", "CANCELLED"),
        *("PENDING", "MEDIAN", "P90", "REVIEWERS", "DISAGREE"),
    ]
    assert lines[3].split()[0] == "refunds/large-refund"
    assert lines[3].split()[2:] == ["4", "2", "0", "1", "1", "0", "0", "2m00s", "5m00s", "2", "33%"]
    assert "refunds/large-refund: auto allow candidate: approved unchanged 2 of 4" in got.stdout
    replay = (
        "  check the change first: signoff policy replay --policies ./policies-changed "
        f"--server {history.target} since=2026-01-01 until=2026-01-03 rule=large-refund"
    )
    assert replay in lines
    assert "needs more reviewers or time: expired 1 of 4 decided reviews (25% >= 10%)" in got.stdout


def test_cli_json(history: ServerHandle) -> None:
    got = _cli(history, *WINDOW, "--json")
    assert got.returncode == 0, got.stderr
    data = json.loads(got.stdout)
    assert data["reviews"] == 4
    assert data["rules"][0]["rule"] == "large-refund"
    assert data["rules"][0]["flags"] == []  # 4 decided reviews: below the default minimum 20


def test_cli_over_an_empty_log(make_server: MakeServer, backend: str) -> None:
    server = make_server(backend=backend)
    got = _cli(server)
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines()[-1] == "no reviews in the window"
    empty = _cli(server, "--json")
    assert json.loads(empty.stdout)["rules"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "3x"), "--since '3x': not a time; use now, a duration ago like 30m"),
        (("--since", "1d", "--until", "2d"), "--until '2d' is not after --since '1d'"),
        (("--min-reviews", "0"), "--min-reviews must be at least 1, not 0"),
        (("--expired-share", "1.5"), "--expired-share must be in (0, 1], not 1.5"),
    ],
)
def test_cli_refuses_bad_flags_before_calling(args: tuple[str, ...], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    cmd = [sys.executable, "-m", "signoff.cli.main", "policy", "insights", *args]
    got = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert got.returncode == 2
    assert got.stderr.strip() == f"signoff: {message}" or message in got.stderr
