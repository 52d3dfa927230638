"""Principal facts vs claims: the tokens file's `principals`, JWT principal_claims, and the
one rewrite of a request's principal (auth/principals.py). End to end: tests/e2e."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from signoff import pb
from signoff.auth import (
    AuthConfigError,
    AuthSettings,
    Directory,
    Identity,
    JwtAuthenticator,
    JwtSettings,
    PrincipalFacts,
    TokensAuthenticator,
    build_directory,
)
from signoff.core import reviews
from signoff.core.redact import MASK, redact
from signoff.errors import InvalidArgument, Unauthenticated
from signoff.policy import cel

ISSUER, AUDIENCE = "https://idp.example.com", "signoff"
BOT = Identity("bot", frozenset({"agent"}))
GATEWAY = Identity("gateway", frozenset({"agent"}), act_for_others=True)
SUPPORT = PrincipalFacts.of(
    kind="agent", roles=["support"], tags=["eu"], attributes={"team": "support"},
    on_behalf_of=["carol"],
)  # fmt: skip


def _principal(**fields: Any) -> pb.common.Principal:
    p = pb.common.Principal(id=fields.pop("id", "bot"))
    attributes = fields.pop("attributes", None)
    for name, value in fields.items():
        if isinstance(value, list):
            getattr(p, name).extend(value)
        else:
            setattr(p, name, value)
    if attributes is not None:
        p.attributes.update(attributes)
    return p


CLAIMS = {
    "kind": "user",
    "roles": ["admin"],
    "tags": ["vip"],
    "attributes": {"tier": "gold"},
    "on_behalf_of": "alice",
}


# --- The rewrite ---


def test_claims_move_to_claimed_and_facts_take_their_place():
    p = _principal(**CLAIMS)
    Directory({"bot": SUPPORT}).vouch(BOT, p)
    assert (p.kind, list(p.roles), list(p.tags)) == ("agent", ["support"], ["eu"])
    assert dict(p.attributes) == {"team": "support"}
    assert p.on_behalf_of == ""  # bot may act for carol only
    c = p.claimed
    assert (c.kind, list(c.roles), list(c.tags), c.on_behalf_of) == (
        "user", ["admin"], ["vip"], "alice",
    )  # fmt: skip
    assert dict(c.attributes) == {"tier": "gold"}


def test_nothing_vouched_means_empty_facts():
    p = _principal(**CLAIMS)
    Directory().vouch(BOT, p)
    assert (p.kind, list(p.roles), list(p.tags), p.on_behalf_of) == ("", [], [], "")
    assert not p.HasField("attributes")
    assert list(p.claimed.tags) == ["vip"]


@pytest.mark.parametrize(
    ("allowed", "asked", "kept"),
    [(["carol"], "carol", "carol"), (["carol"], "dave", ""), ("*", "dave", "dave"), ([], "x", "")],
)
def test_on_behalf_of_stays_only_if_the_facts_allow_it(allowed, asked, kept):
    p = _principal(on_behalf_of=asked)
    Directory({"bot": PrincipalFacts.of(on_behalf_of=allowed)}).vouch(BOT, p)
    assert p.on_behalf_of == kept
    assert p.claimed.on_behalf_of == asked  # the caller's word, always


def test_a_gateway_gets_the_named_principals_directory_facts():
    p = _principal(id="claude-agent", tags=["nothing"])
    directory = Directory({"claude-agent": SUPPORT, "gateway": PrincipalFacts.of(tags=["gw"])})
    directory.vouch(GATEWAY, p)
    assert list(p.tags) == ["eu"]


def test_facts_carried_by_the_credential_win_for_the_callers_own_id():
    jwt_bot = Identity(
        "bot", frozenset({"agent"}), source="jwt", facts=PrincipalFacts.of(tags=["t"])
    )
    p = _principal()
    Directory({"bot": SUPPORT}).vouch(jwt_bot, p)
    assert list(p.tags) == ["t"]
    # ...but never for a principal a gateway names: those are the directory's.
    jwt_gateway = Identity("gateway", frozenset(), act_for_others=True, facts=SUPPORT)
    named = _principal(id="other")
    Directory().vouch(jwt_gateway, named)
    assert list(named.tags) == []


def test_trusted_claims_stay_and_are_copied_to_claimed():
    p = _principal(**CLAIMS)
    Directory({"bot": SUPPORT}, trust_claims=True).vouch(BOT, p)
    assert (p.kind, list(p.tags), p.on_behalf_of) == ("user", ["vip"], "alice")
    assert list(p.claimed.tags) == ["vip"]


def test_a_caller_may_not_send_claimed_itself():
    p = _principal()
    p.claimed.tags.append("vip")
    with pytest.raises(InvalidArgument) as err:
        Directory().vouch(BOT, p, prefix="requests[2].")
    assert err.value.field == "requests[2].principal.claimed"


def test_only_dev_mode_or_the_legacy_switch_trusts_claims(tmp_path):
    assert build_directory(AuthSettings()).trust_claims  # nothing configured: dev mode
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("principals:\n  bot: {tags: [eu]}\n")
    configured = build_directory(AuthSettings(tokens_file=tokens))
    assert not configured.trust_claims
    assert configured.facts_for(BOT, "bot").tags == ("eu",)
    assert build_directory(
        AuthSettings(tokens_file=tokens, trust_principal_claims=True)
    ).trust_claims


# --- Separation of duties, digests, redaction, CEL cost ---


def test_requesters_include_the_claimed_on_behalf_of():
    p = _principal(on_behalf_of="alice")
    Directory().vouch(BOT, p)
    assert p.on_behalf_of == ""
    assert reviews.requesters(p) == {"bot", "alice"}


def test_action_digest_covers_the_principal_as_sent():
    req = pb.common.ActionRequest()
    req.action.name = "refund.issue"
    req.principal.CopyFrom(_principal(**CLAIMS))
    before = reviews.digest(req)
    Directory({"bot": SUPPORT}).vouch(BOT, req.principal)
    assert reviews.digest(req) == before


def test_a_redacted_principal_path_hides_the_claim_too():
    req = pb.common.ActionRequest()
    req.principal.CopyFrom(_principal(attributes={"ssn": "123-45"}, tags=["case-77"]))
    Directory(trust_claims=True).vouch(BOT, req.principal)
    shown = redact(req, ["principal.attributes.ssn", "principal.tags"])
    assert shown.principal.claimed.attributes["ssn"] == MASK
    assert list(shown.principal.claimed.tags) == [MASK]
    assert "123-45" not in str(shown)
    assert "case-77" not in str(shown)


def test_map_over_claimed_lists_is_bounded_like_any_list():
    req = pb.common.ActionRequest()
    req.principal.claimed.tags.extend(["t"] * (cel.MAX_MACRO_LIST_ITEMS + 1))
    program = cel.compile("size(principal.claimed.tags.map(t, t + 'x')) > 0")
    with pytest.raises(cel.CelEvalError, match="map"):
        program.eval(cel.Activation(req, dt.datetime.now(tz=dt.UTC)))


def test_cel_reads_claims_under_principal_claimed():
    req = pb.common.ActionRequest()
    req.principal.CopyFrom(_principal(tags=["vip"]))
    Directory().vouch(BOT, req.principal)
    act = cel.Activation(req, dt.datetime.now(tz=dt.UTC))
    assert cel.compile('"vip" in principal.tags').eval(act) is False
    assert cel.compile('"vip" in principal.claimed.tags').eval(act) is True


# --- The tokens file's principals directory ---


def _tokens(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_principals_directory_is_read_with_the_tokens(tmp_path):
    path = _tokens(
        tmp_path,
        """
        principals:
          support-bot:
            kind: agent
            roles: [support]
            tags: [eu]
            attributes: {team: support, level: 2}
            on_behalf_of: "*"
          claude-agent:
            on_behalf_of: [alice, bob]
        """,
    )
    found = TokensAuthenticator(path).principals
    assert found["support-bot"] == PrincipalFacts.of(
        kind="agent", roles=["support"], tags=["eu"], attributes={"team": "support", "level": 2},
        on_behalf_of="*",
    )  # fmt: skip
    assert found["support-bot"].may_act_for("anyone")
    assert found["claude-agent"].may_act_for("bob")
    assert not found["claude-agent"].may_act_for("eve")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("principals:\n  bot:\n    tgs: [vip]\n", ":3:5: principals.bot.tgs: unknown key 'tgs'"),
        ("principals:\n  bot:\n    roles: support\n", ":3:12: principals.bot.roles:"),
        ("principals:\n  bot:\n    tags: [1]\n", ":3:12: principals.bot.tags[0]:"),
        ("principals:\n  bot:\n    kind: boss\n", ":3:11: principals.bot.kind: Input should be"),
        (
            "principals:\n  bot:\n    on_behalf_of: anyone\n",
            ':3:19: principals.bot.on_behalf_of: must be a list of user ids, or "*" for anyone',
        ),
        (
            "principals:\n  bot:\n    attributes: {since: 2026-01-01}\n",
            ":3:17: principals.bot.attributes: must hold only JSON values",
        ),
        ("principals:\n  bot: [agent]\n", ":2:8: principals.bot: Input should be"),
        ("principals:\n  bot: {}\n  bot: {}\n", ":3:3: duplicate key 'bot'"),
        ("principals: [bot]\n", ":1:13: principals: Input should be a valid dictionary"),
    ],
)
def test_principals_errors_say_where(tmp_path, text, message):
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    with pytest.raises(AuthConfigError) as err:
        TokensAuthenticator(path)
    assert str(err.value).startswith(str(path) + message), str(err.value)


# --- JWT principal_claims ---


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwt_auth(tmp_path: Path, key: rsa.RSAPrivateKey, **names: str) -> JwtAuthenticator:
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    extra: dict[str, Any] = {"principal_claims": names} if names else {}
    return JwtAuthenticator(JwtSettings(jwks_file=path, issuer=ISSUER, audience=AUDIENCE, **extra))


def _jwt(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bot", "exp": int(time.time()) + 300} | claims
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


NAMES = {
    "kind": "principal_kind",
    "roles": "groups",
    "tags": "labels",
    "attributes": "signoff.attributes",
    "on_behalf_of": "acts_for",
}


def test_jwt_principal_claims_are_the_callers_facts(tmp_path, key):
    auth = _jwt_auth(tmp_path, key, **NAMES)
    token = _jwt(
        key,
        principal_kind="service",
        groups=["support", "billing"],
        labels="eu vip",
        signoff={"attributes": {"team": "payments"}},
        acts_for=["alice"],
    )
    assert auth.authenticate(token).facts == PrincipalFacts.of(
        kind="service", roles=["support", "billing"], tags=["eu", "vip"],
        attributes={"team": "payments"}, on_behalf_of=["alice"],
    )  # fmt: skip
    assert auth.authenticate(_jwt(key, acts_for="*")).facts.may_act_for("anyone")  # type: ignore[union-attr]
    assert auth.authenticate(_jwt(key)).facts == PrincipalFacts()  # absent claims: no facts


def test_without_principal_claims_a_jwt_carries_no_facts(tmp_path, key):
    assert _jwt_auth(tmp_path, key).authenticate(_jwt(key, labels=["vip"])).facts is None


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"principal_kind": "boss"}, "claim 'principal_kind' must be agent, user or service"),
        ({"groups": [1]}, "claim 'groups' must be a list of strings or a space-separated string"),
        ({"labels": {"a": 1}}, "claim 'labels' must be a list of strings or a space-separated"),
        ({"signoff": {"attributes": "x"}}, "claim 'signoff.attributes' must be a JSON object"),
        ({"acts_for": 7}, "claim 'acts_for' must be a list of strings or a space-separated"),
    ],
)
def test_bad_jwt_principal_claims_are_refused_by_name(tmp_path, key, claims, message):
    with pytest.raises(Unauthenticated) as err:
        _jwt_auth(tmp_path, key, **NAMES).authenticate(_jwt(key, **claims))
    assert err.value.message.startswith(message)


def test_jwt_principal_claims_settings_are_strict():
    with pytest.raises(ValueError, match="tgs"):
        JwtSettings.model_validate(
            {"jwks_file": "j.json", "issuer": ISSUER, "audience": AUDIENCE,
             "principal_claims": {"tgs": "labels"}}
        )  # fmt: skip


def test_the_review_screen_shows_what_the_agent_only_claims():
    from signoff.cli.reviews_view import details

    review = pb.review.Review(review_id="r1", state=pb.review.REVIEW_STATE_PENDING)
    review.request.action.name = "refund.issue"
    review.request.principal.CopyFrom(_principal(**CLAIMS))
    Directory({"bot": SUPPORT}).vouch(BOT, review.request.principal)
    screen = details(review, dt.datetime.now(tz=dt.UTC))
    assert "roles/tags   support / eu" in screen
    assert (
        "claims       kind user; roles admin; tags vip; acting for alice (unverified: the agent's"
        in screen
    )
    assert "principal attributes claimed (unverified)" in screen
    # Where facts and claims agree (dev mode), there is nothing to point out.
    same = _principal(tags=["vip"])
    Directory(trust_claims=True).vouch(BOT, same)
    review.request.principal.CopyFrom(same)
    assert "claims " not in details(review, dt.datetime.now(tz=dt.UTC))
