"""Redacted means never stored or shown (SPEC "Trust model" 3), through a real server.

A marker is planted in two redacted params and reaches CEL in every way that once carried
it into a text: a failing map lookup keyed by it, a failing regex built from it, a
`reason_expr` that quotes it and `string()` of a numeric one. Then the marker is looked for
everywhere the request could end up: the decision, the reviews and the console's answers,
Explain, the audit log and its exports, the database itself, the server's log lines, its
spans and its webhook bodies.
"""

from __future__ import annotations

import asyncio
import http.server
import io
import logging
import queue
import random
import threading
import uuid
from collections.abc import Iterator

import grpc
import pytest

from signoff import pb
from signoff.logs import JsonFormatter
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc, review_pb2_grpc

from .conftest import MakeServer, ServerHandle
from .test_jwt_and_webhooks import _Receiver as _WebhookHandler
from .test_telemetry import Receiver, otlp_collector

R, A = pb.review, pb.audit
MD = (("authorization", "Bearer tester"),)  # dev mode: every role

POLICY = """\
name: cards
actions: ["card.charge"]
redact: [action.params.card_number, action.params.cvv_code]
rules:
  - name: lookup             # (a) `Key not found in map : "<card number>"`
    when: '{"none": true}[action.params.card_number]'
    decision: review
    reviewers: finance
    reason: a known card
  - name: regex              # (b) `invalid regular expression: ...: <card number>`
    when: '"4111".matches(action.params.card_number)'
    decision: review
    reviewers: finance
    reason: a test card
  - name: quoted             # (c) and (d): the reason quotes both, one through string()
    when: action.params.amount > 10.0
    decision: review
    reviewers: finance
    reason_expr: '"card " + action.params.card_number + ", cvv " + string(action.params.cvv_code)'
  - name: lookup-string      # (d) a failing lookup keyed by string() of the number
    when: '{"none": 1}[string(action.params.cvv_code)] == 1'
    decision: review
    reviewers: finance
    reason: a known code
"""

# No rule here fails, so the policy batch evaluates the file in one program and computes the
# reason inside it, on the real request: that reason must not be the one shown.
BATCHED = """\
name: cards-batched
actions: ["card.charge"]
redact: [action.params.card_number, action.params.cvv_code]
rules:
  - name: batched-quote
    when: action.params.amount > 10.0
    decision: review
    reviewers: finance
    reason_expr: '"batched " + action.params.card_number + " " + string(action.params.cvv_code)'
  - name: batched-small
    when: action.params.amount < 1.0
    decision: allow
    reason: small
"""


class Marker:
    """The planted values: a card "number" (an invalid regex) and a numeric code."""

    def __init__(self) -> None:
        self.tag = f"leak{uuid.uuid4().hex[:12]}"
        self.card = f"5500-{self.tag}-("
        # A double CEL's string() writes as it is: 5 digits and an exact binary fraction.
        self.code = random.randint(10_000, 99_999) + 0.125

    def found_in(self, data: bytes) -> list[str]:
        """The forms of the marker that occur in `data`."""
        forms = [self.tag, repr(self.code)]  # string() writes "12345.125", as repr() does
        return [form for form in forms if form.encode() in data]


@pytest.fixture
def webhooks() -> Iterator[tuple[str, queue.Queue]]:
    """A webhook receiver (as in test_jwt_and_webhooks): its URL and the (headers, body) posted."""
    got: queue.Queue = queue.Queue()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), type("Handler", (_WebhookHandler,), {"got": got})
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", got
    httpd.shutdown()


@pytest.fixture
def otlp() -> Iterator[Receiver]:
    """An OTLP collector (test_telemetry's) keeping the raw span exports."""
    with otlp_collector() as got:
        yield got


@pytest.fixture
def server_log() -> Iterator[io.StringIO]:
    """Every `signoff` log line at DEBUG, rendered as `serve --log-format json` writes them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("signoff")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


def _request(marker: Marker, request_id: str) -> pb.common.ActionRequest:
    req = pb.common.ActionRequest(request_id=request_id)
    req.action.name = "card.charge"
    req.action.params.update({"amount": 42.0, "card_number": marker.card, "cvv_code": marker.code})
    req.principal.id = "shop-bot"
    return req


def _database(server: ServerHandle) -> bytes:
    """The whole database: the SQLite files (WAL included), or every row of the schema."""
    if server.backend == "sqlite":
        return b"".join(p.read_bytes() for p in sorted(server.db_path.parent.glob("signoff.db*")))
    import psycopg

    out = []
    with psycopg.connect(server.db) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        assert {"decisions", "reviews", "audit"} <= {t for (t,) in tables}
        for (table,) in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # names from the catalog
                for value in row:
                    is_bytes = isinstance(value, bytes | memoryview)
                    out.append(bytes(value) if is_bytes else str(value).encode())
    return b"\n".join(out)


async def _first_queue(server: ServerHandle) -> R.Queue:
    async with grpc.aio.insecure_channel(server.target) as channel:
        call = review_pb2_grpc.ReviewServiceStub(channel).WatchQueue(
            R.WatchQueueRequest(), metadata=MD
        )
        async with asyncio.timeout(10):
            snapshot = await call.read()
        call.cancel()
        return snapshot


def test_a_redacted_value_reaches_no_answer_row_log_span_or_webhook(
    webhooks: tuple[str, queue.Queue],  # first: up until the server has stopped
    otlp: Receiver,
    server_log: io.StringIO,
    make_server: MakeServer,
    backend: str,
    policy_dir,
) -> None:
    url, posted = webhooks
    server = make_server(
        policies=policy_dir({"cards.yaml": POLICY, "cards_batched.yaml": BATCHED}),
        notify={"webhooks": {"finance": [{"url": url, "secret": "s3cret"}]}},
        telemetry={"otlp_endpoint": otlp.endpoint, "export_interval": 0.1, "export_timeout": 2},
    )
    marker = Marker()
    decisions = decision_pb2_grpc.DecisionServiceStub(server.channel())
    reviews = review_pb2_grpc.ReviewServiceStub(server.channel())
    audit = audit_pb2_grpc.AuditServiceStub(server.channel())
    shown: dict[str, bytes] = {}

    first = decisions.Evaluate(_request(marker, "charge-1"), metadata=MD)
    assert first.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
    rules = ["lookup", "regex", "quoted", "lookup-string", "batched-quote"]
    assert [m.rule for m in first.matched_rules] == rules
    assert server.running.app.bundle.policies_for("card.charge")[1].batch is not None
    # Each way in produced a text about the redacted value, not the value.
    errors = {m.rule: m.error for m in first.matched_rules}
    assert errors["lookup"] == 'when: Key not found in map : "[REDACTED]"'
    assert "message is withheld because it depends on a redacted value" in errors["regex"]
    assert first.matched_rules[2].reason == "card [REDACTED], cvv [REDACTED]"
    assert first.matched_rules[4].reason == "batched [REDACTED] [REDACTED]"
    shown["Evaluate"] = first.SerializeToString()
    replay = decisions.Evaluate(_request(marker, "charge-1"), metadata=MD)
    assert replay.replayed
    shown["Evaluate (replayed)"] = replay.SerializeToString()
    batch = pb.decision.EvaluateBatchRequest(requests=[_request(marker, "charge-2")])
    second = decisions.EvaluateBatch(batch, metadata=MD).decisions[0]
    shown["EvaluateBatch"] = second.SerializeToString()
    shown["Explain"] = decisions.Explain(_request(marker, ""), metadata=MD).SerializeToString()

    approved = reviews.SubmitReview(
        R.SubmitReviewRequest(
            review_id=first.review_id, verdict=R.VERDICT_APPROVE, expected_version=1
        ),
        metadata=MD,
    )
    shown["SubmitReview"] = approved.SerializeToString()
    get = reviews.GetReview(R.GetReviewRequest(review_id=second.review_id), metadata=MD)
    assert get.matched_rules[2].reason == "card [REDACTED], cvv [REDACTED]"
    shown["GetReview"] = get.SerializeToString()
    every_state = R.ListReviewsRequest(states=[R.REVIEW_STATE_PENDING, R.REVIEW_STATE_APPROVED])
    listed = reviews.ListReviews(every_state, metadata=MD)
    assert len(listed.reviews) == 2
    shown["ListReviews"] = listed.SerializeToString()
    precedents = reviews.ListPrecedents(
        R.ListPrecedentsRequest(review_id=second.review_id), metadata=MD
    )
    assert [p.review_id for p in precedents.precedents] == [first.review_id]
    shown["ListPrecedents"] = precedents.SerializeToString()
    snapshot = asyncio.run(_first_queue(server))
    assert [r.review_id for r in snapshot.reviews] == [second.review_id]
    shown["WatchQueue"] = snapshot.SerializeToString()

    entries = audit.QueryAudit(A.QueryAuditRequest(page_size=100), metadata=MD).entries
    assert {e.type for e in entries} >= {"decision", "review.opened", "review.approved"}
    shown["QueryAudit"] = b"".join(e.SerializeToString() for e in entries)
    for name, fmt in [("JSONL", A.EXPORT_FORMAT_JSONL), ("CSV", A.EXPORT_FORMAT_CSV)]:
        chunks = audit.ExportAudit(A.ExportAuditRequest(format=fmt), metadata=MD)
        shown[f"ExportAudit {name}"] = b"".join(c.data for c in chunks)

    # Two reviews opened, one resolved: three deliveries to the finance webhook.
    for i in range(3):
        headers, body = posted.get(timeout=30)
        shown[f"webhook {i + 1} ({headers['X-Signoff-Event']})"] = body
    otlp.wait(lambda: len(otlp.named("signoff.decision")) >= 2)
    server.running.app.telemetry.force_flush()
    with otlp.changed:
        shown["spans"] = b"".join(otlp.raw)
    shown["database (running)"] = _database(server)
    server.call(server.running.stop(0))
    shown["database (stopped)"] = _database(server)
    shown["server log"] = server_log.getvalue().encode()
    assert b'"decision_id"' in shown["server log"]  # DEBUG decision events were captured

    leaks = {where: found for where, data in shown.items() if (found := marker.found_in(data))}
    assert not leaks, f"the redacted marker leaked: {leaks}"


def test_without_redaction_the_same_requests_do_carry_the_marker(
    make_server: MakeServer, backend: str, policy_dir
) -> None:
    # The control: the policy above, minus `redact`, writes the marker into every text that
    # the test above checks, so a text that stops being scrubbed is caught there.
    no_redact = "redact: [action.params.card_number, action.params.cvv_code]\n"
    files = {"cards.yaml": POLICY, "cards_batched.yaml": BATCHED}
    server = make_server(
        policies=policy_dir({k: v.replace(no_redact, "") for k, v in files.items()})
    )
    marker = Marker()
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    d = stub.Evaluate(_request(marker, "charge-1"), metadata=MD)
    by_rule = {m.rule: f"{m.error} {m.reason}".encode() for m in d.matched_rules}
    assert {rule: bool(marker.found_in(text)) for rule, text in by_rule.items()} == {
        "lookup": True,
        "regex": True,
        "quoted": True,
        "lookup-string": True,
        "batched-quote": True,
    }
    assert repr(marker.code).encode() in by_rule["quoted"]  # string() of the number
