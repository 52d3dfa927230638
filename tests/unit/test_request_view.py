"""One view of a request per decision: its forms agree with the converters, and a decision
masks and converts its request once, whatever the outcome."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import pb
from signoff.app import decisions as app_module
from signoff.app.decisions import Signoff
from signoff.app.receipts import ReceiptIssuer
from signoff.auth.identity import Identity
from signoff.core import decide, jsonify, redact, reviews
from signoff.core.decide import DefaultDecision
from signoff.core.jsonify import request_to_dict, request_view
from signoff.core.validate import Limits
from signoff.ids import SystemClock, new_id
from signoff.policy import load_bundle
from signoff.store.sqlite.store import SqliteStore

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PATHS = ("action.params.card_number", "principal.attributes.ip")
WHO = Identity("support-bot", frozenset({"agent"}))


def refund(amount: float, card: bool = True, request_id: str = "r-1") -> pb.common.ActionRequest:
    """A refund request; with `card`, it holds what the example policy redacts."""
    req = pb.common.ActionRequest(request_id=request_id, justification="double charge")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": amount, "currency": "EUR"})
    if card:
        req.action.params["card_number"] = "4111 1111"
    req.principal.id = "support-bot"
    req.principal.tags.append("eu")
    req.resource.kind, req.resource.id = "account", "acct_42"
    req.context.update({"ticket": "T-1234"})
    return req


@pytest.mark.parametrize("card", [True, False], ids=["something to mask", "nothing to mask"])
def test_every_form_is_what_the_converters_give(card: bool) -> None:
    req = refund(750, card)
    if card:  # what the server keeps of the caller's word is masked too (principal.claimed)
        req.principal.claimed.attributes["ip"] = "10.0.0.1"
    view = request_view(req, PATHS)
    shown = redact.redact(req, PATHS)
    assert (view.masked is None) is (not card)
    assert view.shown == shown
    assert view.plain == request_to_dict(req)
    assert view.shown_plain == request_to_dict(shown)
    assert view.action_digest == reviews.digest(req)
    assert view.shown_digest == reviews.digest(shown)
    wire = hashlib.sha256(req.SerializeToString(deterministic=True)).hexdigest()
    assert view.wire_digest == wire
    if card:
        assert view.shown_digest != view.action_digest  # the mask is in what a review signs
        assert view.shown_plain["action"]["params"]["card_number"] == redact.MASK
        assert view.shown_plain["principal"]["claimed"]["attributes"]["ip"] == redact.MASK
        assert req.action.params["card_number"] == "4111 1111"  # the request is left alone


def test_the_engine_takes_the_views_masked_copy_only_if_made_for_its_paths() -> None:
    bundle = load_bundle(POLICIES)
    req = refund(750)
    req.resource.attributes["tier"] = "vip"  # vip-account: its reason quotes resource.id
    own = request_view(req, bundle.applicable(req.action.name).redact)
    other = request_view(req, ("resource.id",))  # a view made for some other policy
    now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    alone = decide.evaluate(bundle, req, now, DefaultDecision())
    assert alone.reason == "VIP account acct_42: refund of 750"
    assert decide.evaluate(bundle, req, now, DefaultDecision(), view=own) == alone
    assert decide.evaluate(bundle, req, now, DefaultDecision(), view=other) == alone


class Counts:
    """Calls of the request's converters, by what they were given (its bytes)."""

    def __init__(self) -> None:
        self.masked = 0
        self.views = 0
        self.plain: collections.Counter[bytes] = collections.Counter()

    def reset(self) -> None:
        self.masked = self.views = 0
        self.plain.clear()


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    """Count every masking, plain conversion and view, wherever a module imported them."""
    seen = Counts()
    real_masked, real_plain, real_view = redact.masked, jsonify.request_to_dict, request_view

    def masked(*args: Any) -> Any:
        seen.masked += 1
        return real_masked(*args)

    def plain(r: pb.common.ActionRequest) -> Any:
        seen.plain[r.SerializeToString(deterministic=True)] += 1
        return real_plain(r)

    def view(*args: Any) -> Any:
        seen.views += 1
        return real_view(*args)

    for module in (redact, decide, jsonify):
        monkeypatch.setattr(module, "masked", masked, raising=False)
    for module in (jsonify, reviews, app_module):
        monkeypatch.setattr(module, "request_to_dict", plain, raising=False)
    monkeypatch.setattr(app_module, "request_view", view, raising=False)
    return seen


@pytest.fixture
async def signoff(tmp_path: Path) -> AsyncIterator[Signoff]:
    """The application as server.py builds it: SQLite store, example policies, receipts."""
    clock = SystemClock()
    store = SqliteStore(tmp_path / "signoff.db", clock)
    app = Signoff(
        policies=POLICIES,
        store=store,
        clock=clock,
        new_id=new_id,
        limits=Limits(),
        default=DefaultDecision(),
        receipts=ReceiptIssuer(Ed25519PrivateKey.generate(), dt.timedelta(minutes=15)),
    )
    await store.open()
    await app.start()
    yield app
    await store.close()


OUTCOMES: dict[str, tuple[float, int]] = {
    "auto-allow": (120, pb.common.OUTCOME_AUTO_ALLOW),
    "require-review": (750, pb.common.OUTCOME_REQUIRE_REVIEW),
    "deny": (20_000, pb.common.OUTCOME_DENY),
}


@pytest.mark.parametrize("case", OUTCOMES)
@pytest.mark.parametrize("card", [True, False], ids=["masked", "nothing to mask"])
async def test_a_decision_masks_and_converts_its_request_once(
    signoff: Signoff, counts: Counts, case: str, card: bool
) -> None:
    amount, outcome = OUTCOMES[case]
    counts.reset()  # the policy load converts no request, but start from nothing
    decision = await signoff.evaluate(WHO, refund(amount, card))
    assert decision.outcome == outcome
    assert decision.HasField("receipt") is (outcome == pb.common.OUTCOME_AUTO_ALLOW)
    assert counts.views == 1
    assert counts.masked == 1  # the policy redacts card_number: it looks once, masks once
    # The audit payload, and the receipt or the review, share plain forms: no request (the
    # real one, or its masked copy) is converted twice.
    assert counts.plain, "the audit payload holds the request"
    assert max(counts.plain.values()) == 1, counts.plain.values()
    stored = await signoff.store.read_audit(1, 1000)
    payload = next(e.payload for e in reversed(stored) if e.type == "decision")
    assert payload["request"]["action"]["params"].get("card_number") == (
        redact.MASK if card else None
    )


def test_the_digest_of_a_masked_request_needs_no_whole_conversion() -> None:
    req = refund(120)
    req.resource.kind, req.resource.id = "account", "acct_42"
    req.resource.attributes["region"] = "eu"
    req.context["ticket"] = "T-1"
    view = request_view(req, PATHS)
    assert view.masked is not None
    assert view.action_digest == reviews.digest(req)  # first: nothing converted before it
    assert "plain" not in view.__dict__
