"""Identities and roles, the tokens file, dev mode, the chain and the settings."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from signoff.auth import (
    ALL_ROLES,
    AuthConfigError,
    AuthSettings,
    ChainAuthenticator,
    DevAuthenticator,
    Identity,
    JwtSettings,
    TokensAuthenticator,
    build_authenticator,
    hash_token,
    looks_like_jwt,
    new_token,
    parse_roles,
)
from signoff.errors import Unauthenticated

ALICE = "alice-secret-token"
GATEWAY = "gateway-secret-token"


def write(tmp_path: Path, text: str, name: str = "tokens.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        f"""
        tokens:
          - sha256: {hash_token(ALICE)}
            identity: alice
            roles: [reviewer:refunds, reviewer:payments, auditor]
          - sha256: {hash_token(GATEWAY).upper()}
            identity: gateway
            roles: [agent]
            act_for_others: true
        """,
    )


# --- Identity and roles ---


def test_identity_reviewer_groups_and_role_properties():
    who = Identity("alice", frozenset({"reviewer:refunds", "reviewer:ops", "auditor"}))
    assert who.reviewer_groups == {"refunds", "ops"}
    assert who.can_review("refunds")
    assert not who.can_review("payments")
    assert who.is_auditor
    assert not who.is_admin
    assert not who.is_agent
    assert who.has_role("auditor")
    assert not who.reviews_all_groups


def test_reviewer_star_reviews_every_group():
    who = Identity("root", ALL_ROLES, act_for_others=True, source="dev")
    assert who.can_review("anything")
    assert who.reviews_all_groups
    assert who.is_admin
    assert who.is_agent
    assert who.is_auditor


def test_identities_compare_by_value():
    a = Identity("a", frozenset({"agent"}))
    assert a == Identity("a", frozenset({"agent"}))
    assert hash(a) == hash(Identity("a", frozenset({"agent"})))


@pytest.mark.parametrize(
    ("role", "message"),
    [
        (
            "superuser",
            "unknown role 'superuser': use agent, reviewer:<group>, auditor, admin or witness",
        ),
        ("reviewer:", "unknown role 'reviewer:'"),
        ("reviewer:Big Group", "unknown role 'reviewer:Big Group'"),
        ("Admin", "unknown role 'Admin'"),
    ],
)
def test_unknown_role_is_a_config_error_naming_it(role, message):
    with pytest.raises(AuthConfigError, match=r"^" + message.replace("(", r"\(")):
        parse_roles(["agent", role])


def test_valid_roles_parse():
    roles = [
        "agent",
        "reviewer:refunds",
        "reviewer:*",
        "auditor",
        "admin",
        "witness",
        "reviewer:a.b-c_d",
    ]
    assert parse_roles(roles) == frozenset(roles)


# --- Tokens file ---


def test_token_maps_to_identity_and_roles(tokens_file):
    auth = TokensAuthenticator(tokens_file)
    alice = auth.authenticate(ALICE)
    assert alice == Identity(
        "alice", frozenset({"reviewer:refunds", "reviewer:payments", "auditor"}), False, "tokens"
    )
    gateway = auth.authenticate(GATEWAY)  # stored upper-case hex: accepted
    assert gateway.act_for_others
    assert gateway.is_agent
    assert len(auth) == 2


def test_unknown_token(tokens_file):
    auth = TokensAuthenticator(tokens_file)
    with pytest.raises(Unauthenticated, match=r"^unknown token$"):
        auth.authenticate("not-a-listed-token")
    with pytest.raises(Unauthenticated, match=r"^unknown token$"):
        auth.authenticate(hash_token(ALICE))  # the hash itself is not a token


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token(tokens_file, token):
    with pytest.raises(Unauthenticated, match=r"^missing bearer token$"):
        TokensAuthenticator(tokens_file).authenticate(token)


def test_new_token_is_random_urlsafe_and_hashes_to_its_pair():
    token, digest = new_token()
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert len(token) >= 43
    assert "." not in token
    assert not looks_like_jwt(token)
    assert new_token()[0] != token


def test_one_identity_may_hold_several_agreeing_tokens(tmp_path):
    path = write(
        tmp_path,
        f"""
        tokens:
          - {{sha256: {hash_token("old")}, identity: bot, roles: [agent]}}
          - {{sha256: {hash_token("new")}, identity: bot, roles: [agent]}}
        """,
    )
    auth = TokensAuthenticator(path)
    assert auth.authenticate("old") == auth.authenticate("new")


def test_empty_roles_default(tmp_path):
    path = write(tmp_path, f"tokens:\n  - {{sha256: {hash_token('x')}, identity: nobody}}\n")
    who = TokensAuthenticator(path).authenticate("x")
    assert who.roles == frozenset()
    assert not who.act_for_others


H1, H2 = hash_token("one"), hash_token("two")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tokens:\n  - sha256: abc123\n    identity: a\n",
            ":2:13: tokens[0].sha256: must be 64 hex digits",
        ),
        (
            f"tokens:\n  - sha256: {'g' * 64}\n    identity: a\n",
            ":2:13: tokens[0].sha256: must be 64 hex digits",
        ),
        (
            f"tokens:\n  - {{sha256: {H1}, identity: a}}\n  - {{sha256: {H1}, identity: b}}\n",
            ":3:14: tokens[1].sha256: duplicate token hash (also on line 2)",
        ),
        (
            f"tokens:\n  - {{sha256: {H1}, identity: a, roles: [agent]}}\n"
            f"  - {{sha256: {H2}, identity: a, roles: [admin]}}\n",
            ":3:90: tokens[1].identity: 'a' has different roles or act_for_others"
            " than its entry on line 2",
        ),
        (
            f"tokens:\n  - sha256: {H1}\n    identity: a\n    roles: [agent, root]\n",
            ":4:20: tokens[0].roles[1]: unknown role 'root'",
        ),
        (
            f"tokens:\n  - sha256: {H1}\n    identity: a\n    role: [agent]\n",
            ":4:5: tokens[0].role: unknown key 'role'",
        ),
        (
            f"tokens:\n  - sha256: {H1}\n    roles: [agent]\n",
            ":2:5: tokens[0].identity: missing required key 'identity'",
        ),
        (
            f"tokens:\n  - sha256: {H1}\n    identity: a\n    act_for_others: maybe\n",
            ":4:21: tokens[0].act_for_others: Input should be a valid boolean",
        ),
        (
            f"tokens:\n  - sha256: {H1}\n    identity: a\n    identity: b\n",
            ":4:5: duplicate key 'identity'",
        ),
        ("tokens: [\n", ":2:1: invalid YAML"),
        ("- just a list\n", ":1:1: a tokens file is a mapping with a 'tokens' list"),
        ("", ":1:1: a tokens file is a mapping with a 'tokens' list"),
    ],
)
def test_tokens_file_errors_say_where(tmp_path, text, message):
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    with pytest.raises(AuthConfigError) as err:
        TokensAuthenticator(path)
    assert str(err.value).startswith(str(path) + message), str(err.value)


def test_tokens_file_reports_every_error(tmp_path):
    path = write(
        tmp_path,
        """
        tokens:
          - {sha256: nothex, identity: a}
          - {sha256: nothex, identity: b, roles: [boss]}
        """,
    )
    with pytest.raises(AuthConfigError) as err:
        TokensAuthenticator(path)
    assert len(str(err.value).splitlines()) == 3


def test_missing_tokens_file(tmp_path):
    with pytest.raises(AuthConfigError, match="cannot read tokens file"):
        TokensAuthenticator(tmp_path / "absent.yaml")


# --- Dev mode ---


def test_dev_mode_without_token_is_dev_with_every_role():
    who = DevAuthenticator().authenticate(None)
    assert who == Identity("dev", ALL_ROLES, act_for_others=True, source="dev")
    assert who.roles == {"agent", "reviewer:*", "auditor", "admin", "witness"}


def test_dev_mode_token_names_the_identity():
    auth = DevAuthenticator()
    alice, bob = auth.authenticate("alice"), auth.authenticate("bob")
    assert (alice.id, bob.id) == ("alice", "bob")
    assert alice.roles == bob.roles == ALL_ROLES
    assert alice.source == "dev"
    assert auth.authenticate("alice") is alice


@pytest.mark.parametrize("token", [" alice", "a\nb", "x" * 129])
def test_dev_mode_refuses_odd_names(token):
    with pytest.raises(Unauthenticated, match=r"^dev mode: the token is a name"):
        DevAuthenticator().authenticate(token)


# --- Settings and the chain ---


def test_nothing_configured_means_dev_mode():
    assert build_authenticator(AuthSettings()) is None


def test_tokens_file_setting_builds_tokens_authenticator(tokens_file):
    auth = build_authenticator(AuthSettings.model_validate({"tokens_file": str(tokens_file)}))
    assert isinstance(auth, TokensAuthenticator)


def test_jwt_settings_need_exactly_one_key_source(tmp_path):
    with pytest.raises(ValidationError, match="exactly one of jwks_file and jwks_url"):
        JwtSettings(issuer="i", audience="a")
    with pytest.raises(ValidationError, match="exactly one of jwks_file and jwks_url"):
        JwtSettings(
            issuer="i", audience="a", jwks_file=tmp_path / "k.json", jwks_url="https://x/jwks"
        )


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512", "RS1"])
def test_jwt_settings_refuse_symmetric_and_none_algorithms(alg):
    with pytest.raises(ValidationError, match=f"algorithm '{alg}' not accepted"):
        JwtSettings(issuer="i", audience="a", jwks_url="https://idp/jwks", algorithms=[alg])


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://idp.example.com/.well-known/jwks.json", True),
        ("http://127.0.0.1:8080/jwks", True),
        ("http://localhost/jwks", True),
        ("http://[::1]:80/jwks", True),
        ("http://idp.example.com/jwks", False),
        ("file:///etc/jwks.json", False),
        ("idp.example.com/jwks", False),
    ],
)
def test_jwks_url_must_be_https_except_loopback(url, ok):
    if ok:
        assert JwtSettings(issuer="i", audience="a", jwks_url=url).jwks_url == url
    else:
        with pytest.raises(ValidationError, match="must be an https:// URL"):
            JwtSettings(issuer="i", audience="a", jwks_url=url)


def test_auth_settings_refuse_unknown_keys():
    with pytest.raises(ValidationError, match="tokens_fil"):
        AuthSettings.model_validate({"tokens_fil": "x"})


def test_jwt_defaults():
    s = JwtSettings(issuer="i", audience="a", jwks_url="https://idp/jwks")
    assert s.algorithms == ["RS256", "ES256", "EdDSA"]
    assert s.leeway_s == 30
    assert (s.identity_claim, s.roles_claim) == ("sub", "roles")
    assert s.act_for_others_claim == "signoff_act_for_others"


@pytest.mark.parametrize(
    ("token", "jwt"),
    [
        ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", True),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", True),
        ("abc", False),
        ("a.b", False),
        ("a.b.c.d", False),
        ("a b.c.d", False),
    ],
)
def test_looks_like_jwt(token, jwt):
    assert looks_like_jwt(token) is jwt


class _Fixed:
    """A stand-in authenticator that records what it was asked."""

    def __init__(self, name: str, accept: str) -> None:
        self.name, self.accept, self.seen = name, accept, []

    def authenticate(self, token):
        self.seen.append(token)
        if token != self.accept:
            raise Unauthenticated(f"{self.name}: unknown token")
        return Identity(self.name, frozenset())


def test_chain_tries_in_order_and_reports_the_first_refusal():
    one, two = _Fixed("one", "t1"), _Fixed("two", "t2")
    chain = ChainAuthenticator([one, two])
    assert chain.authenticate("t1").id == "one"
    assert chain.authenticate("t2").id == "two"
    with pytest.raises(Unauthenticated, match=r"^one: unknown token$"):
        chain.authenticate("t3")
    with pytest.raises(Unauthenticated, match=r"^missing bearer token$"):
        chain.authenticate(None)
    assert one.seen == ["t1", "t2", "t3"]
