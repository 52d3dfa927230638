"""Hostile action globs: they cannot stall the server, and oversized ones are refused.

Issue 19: an agent plants a 200-character action name; an auditor's `*a*a*a*a*a*b` then ran
as a backtracking regex under the GIL and froze every call for 80 s. And a 100k-character
ListReviews glob came back UNAVAILABLE, which clients retry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import grpc
import pytest

from signoff import pb
from signoff.policy.globs import MAX_GLOB_LENGTH, MAX_GLOB_WILDCARDS
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc

from ..e2e.conftest import ServerHandle
from .conftest import Serve

A = pb.audit
PEOPLE = {
    "mallory-token": ("mallory", ["agent"]),
    "victim-token": ("victim", ["agent"]),
    "audit-token": ("ann", ["auditor"]),
}
# Names that almost match the globs below: a backtracking engine tries every split of them.
PLANTED = ("a" * 200, "a" * 199 + "c", "a" * 99 + "." + "a" * 100)
WORST = (
    "*a*a*a*a*a*b",  # the issue's: 80 s per name before
    "*a" * (MAX_GLOB_WILDCARDS - 1) + "*b",  # the most stars allowed: hours before
)
STALLED = 20.0  # seconds: an Evaluate that takes longer was stalled by the attack


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _evaluate(channel: grpc.Channel, who: str, name: str, timeout: float) -> pb.common.Decision:
    req = pb.common.ActionRequest()
    req.action.name = name
    req.principal.id = who
    stub = decision_pb2_grpc.DecisionServiceStub(channel)
    return stub.Evaluate(req, metadata=_md(f"{who}-token"), timeout=timeout)


def test_the_worst_glob_over_planted_names_does_not_stall_another_agents_evaluate(
    serve: Serve,
    backend: str,  # on each backend: each store matches the globs its own way
) -> None:
    served = serve(people=PEOPLE)
    channel = served.channel()
    for name in PLANTED:
        _evaluate(channel, "mallory", name, timeout=10)
    audit = audit_pb2_grpc.AuditServiceStub(channel)
    attacks: list[Callable[[], object]] = []
    for glob in WORST:
        f = A.AuditFilter(action=glob)
        attacks.append(lambda f=f: audit.QueryAudit(A.QueryAuditRequest(filter=f), **_auditor()))
        attacks.append(
            lambda f=f: b"".join(
                c.data for c in audit.ExportAudit(A.ExportAuditRequest(filter=f), **_auditor())
            )
        )
    done = threading.Event()
    failures: list[BaseException] = []

    def flood() -> None:  # the auditor's queries, back to back, while the victim works
        try:
            while not done.is_set():
                for attack in attacks:
                    attack()
        except BaseException as e:  # reported by the main thread
            failures.append(e)

    attacker = threading.Thread(target=flood, daemon=True)
    attacker.start()
    try:
        for _ in range(10):
            # The deadline is the assertion: a stalled server answers DEADLINE_EXCEEDED. It
            # is set far from both sides: a backtracking match held the GIL for 80 s per
            # planted name; an answer takes milliseconds, however loaded the machine.
            decision = _evaluate(channel, "victim", "email.send", timeout=STALLED)
            assert decision.outcome != pb.common.OUTCOME_UNSPECIFIED
    finally:
        done.set()
        attacker.join(timeout=60)
    assert not failures, failures
    assert not attacker.is_alive(), "an attack query did not return within 60 s"
    # The globs are answered, not refused: no planted name ends in "b".
    for glob in WORST:
        page = audit.QueryAudit(
            A.QueryAuditRequest(filter=A.AuditFilter(action=glob)), **_auditor()
        )
        assert list(page.entries) == []
    wide = audit.QueryAudit(A.QueryAuditRequest(filter=A.AuditFilter(action="*a*c")), **_auditor())
    assert {e.action_name for e in wide.entries} == {"a" * 199 + "c"}


def _auditor() -> dict[str, object]:
    return {"metadata": _md("audit-token"), "timeout": 60}


def _refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


BAD_GLOBS = [
    # Far over: the request's field bound (limits.fields.pattern_bytes) refuses it first.
    pytest.param("a" * 100_000, "KiB encoded exceeds the 512 bytes limit", id="100k-characters"),
    pytest.param("a" * (MAX_GLOB_LENGTH + 1), "characters exceeds", id="one-over-length"),
    pytest.param("*a" * (MAX_GLOB_WILDCARDS + 1), "wildcards exceeds", id="too-many-stars"),
    pytest.param("*" * 50_000, "exceeds the 512 bytes limit", id="50k-stars"),
    pytest.param("refund[", "not an action name glob", id="bracket"),
]


@pytest.mark.parametrize(("glob", "problem"), BAD_GLOBS)
def test_oversized_globs_are_invalid_argument_naming_the_field_on_every_rpc(
    server: ServerHandle, glob: str, problem: str
) -> None:
    channel = server.channel()
    audit = audit_pb2_grpc.AuditServiceStub(channel)
    reviews = review_pb2_grpc.ReviewServiceStub(channel)
    f = A.AuditFilter(action=glob)
    md = {"metadata": _md("ann"), "timeout": 30}
    calls = {
        "filter.action": (
            lambda: audit.QueryAudit(A.QueryAuditRequest(filter=f), **md),
            lambda: b"".join(
                c.data for c in audit.ExportAudit(A.ExportAuditRequest(filter=f), **md)
            ),
        ),
        "action": (lambda: reviews.ListReviews(pb.review.ListReviewsRequest(action=glob), **md),),
    }
    for field, tries in calls.items():
        for call in tries:
            err = _refusal(call)
            # Never UNAVAILABLE: clients retry that, and this input will never succeed.
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
            assert err.details().startswith(f"{field}: "), err.details()
            assert problem in err.details()


@pytest.mark.parametrize(
    "glob", ["a" * MAX_GLOB_LENGTH, "*a" * (MAX_GLOB_WILDCARDS - 1) + "*"], ids=["length", "stars"]
)
def test_a_glob_at_the_caps_is_answered(server: ServerHandle, glob: str) -> None:
    channel = server.channel()
    audit = audit_pb2_grpc.AuditServiceStub(channel)
    page = audit.QueryAudit(
        A.QueryAuditRequest(filter=A.AuditFilter(action=glob)), metadata=_md("ann"), timeout=30
    )
    assert list(page.entries) == []  # the fresh log holds only policy.loaded entries
    reviews = review_pb2_grpc.ReviewServiceStub(channel)
    listed = reviews.ListReviews(
        pb.review.ListReviewsRequest(action=glob), metadata=_md("ann"), timeout=30
    )
    assert list(listed.reviews) == []
