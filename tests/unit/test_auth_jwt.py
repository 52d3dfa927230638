"""JWT bearer tokens: keys from a JWKS file or URL, claims, expiry, refused algorithms."""

from __future__ import annotations

import base64
import http.server
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from signoff.auth import (
    AuthConfigError,
    AuthSettings,
    ChainAuthenticator,
    Identity,
    JwtAuthenticator,
    JwtSettings,
    TokensAuthenticator,
    build_authenticator,
    hash_token,
)
from signoff.errors import Unauthenticated

ISSUER = "https://idp.example.com"
AUDIENCE = "signoff"


class Keys:
    """Signing keys of a fake identity provider, and their public JWKS."""

    def __init__(self) -> None:
        self.private = {
            "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1()),
            "ed": ed25519.Ed25519PrivateKey.generate(),
        }
        self.alg = {"rsa": "RS256", "ec": "ES256", "ed": "EdDSA"}
        self.other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self, kids: tuple[str, ...] = ("rsa", "ec", "ed")) -> dict[str, Any]:
        to_jwk = {"rsa": RSAAlgorithm, "ec": ECAlgorithm, "ed": OKPAlgorithm}
        keys = []
        for kid in kids:
            jwk = to_jwk[kid].to_jwk(self.private[kid].public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": self.alg[kid], "use": "sig"})
        return {"keys": keys}

    def token(self, kid: str = "rsa", key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, "iat": now}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(
            body, key or self.private[kid], algorithm=self.alg[kid], headers={"kid": kid}
        )


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture
def jwks_file(tmp_path: Path, keys: Keys) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.jwks()))
    return path


def settings(jwks_file: Path | None = None, **kw: Any) -> JwtSettings:
    return JwtSettings(jwks_file=jwks_file, issuer=ISSUER, audience=AUDIENCE, **kw)


@pytest.fixture
def auth(jwks_file: Path) -> JwtAuthenticator:
    return JwtAuthenticator(settings(jwks_file))


def refused(auth: Any, token: str, message: str) -> None:
    with pytest.raises(Unauthenticated) as err:
        auth.authenticate(token)
    assert err.value.message == message


# --- Valid tokens ---


@pytest.mark.parametrize("kid", ["rsa", "ec", "ed"])
def test_valid_jwt_gives_identity_and_roles(auth, keys, kid):
    token = keys.token(kid, roles=["agent", "reviewer:refunds"], signoff_act_for_others=True)
    assert auth.authenticate(token) == Identity(
        "alice", frozenset({"agent", "reviewer:refunds"}), act_for_others=True, source="jwt"
    )


def test_missing_roles_claim_means_no_roles(auth, keys):
    who = auth.authenticate(keys.token())
    assert who.roles == frozenset()
    assert not who.act_for_others


def test_roles_as_space_separated_string(auth, keys):
    assert auth.authenticate(keys.token(roles="agent  auditor")).roles == {"agent", "auditor"}


def test_roles_the_provider_adds_for_itself_are_ignored(auth, keys):
    who = auth.authenticate(keys.token(roles=["offline_access", "admin", "reviewer:Bad Group"]))
    assert who.roles == {"admin"}


def test_configurable_claims_with_dotted_path_and_exact_url_names(jwks_file, keys):
    auth = JwtAuthenticator(
        settings(
            jwks_file,
            identity_claim="email",
            roles_claim="realm_access.roles",
            act_for_others_claim="https://signoff.dev/gateway",
        )
    )
    token = keys.token(
        email="gw@example.com",
        realm_access={"roles": ["agent"]},
        **{"https://signoff.dev/gateway": True},
    )
    who = auth.authenticate(token)
    assert (who.id, who.roles, who.act_for_others) == ("gw@example.com", {"agent"}, True)


def test_audience_list_containing_ours_is_accepted(auth, keys):
    assert auth.authenticate(keys.token(aud=["other", AUDIENCE])).id == "alice"


def test_jwks_with_one_key_needs_no_kid(tmp_path, keys):
    path = tmp_path / "one.json"
    jwk = keys.jwks(("ec",))
    del jwk["keys"][0]["kid"]
    path.write_text(json.dumps(jwk))
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "bob", "exp": time.time() + 60},
        keys.private["ec"],
        algorithm="ES256",
    )
    assert JwtAuthenticator(settings(path)).authenticate(token).id == "bob"


# --- Expiry: crafted exp/nbf and an injected clock, never sleeping ---


def test_expired_jwt(auth, keys):
    refused(auth, keys.token(exp=int(time.time()) - 120), "token expired")


def test_expiry_within_leeway_is_accepted(jwks_file, keys):
    auth = JwtAuthenticator(settings(jwks_file, leeway_s=30))
    assert auth.authenticate(keys.token(exp=int(time.time()) - 10)).id == "alice"
    strict = JwtAuthenticator(settings(jwks_file, leeway_s=0))
    refused(strict, keys.token(exp=int(time.time()) - 10), "token expired")


def test_not_yet_valid(auth, keys):
    refused(auth, keys.token(nbf=int(time.time()) + 600), "token not valid yet (nbf)")


def test_cached_token_still_expires(jwks_file, keys):
    now = [time.time()]
    auth = JwtAuthenticator(settings(jwks_file, leeway_s=5), clock=lambda: now[0])
    token = keys.token(exp=int(now[0]) + 60)
    first = auth.authenticate(token)
    assert auth.authenticate(token) is first  # verified once, then served from the cache
    now[0] += 64
    assert auth.authenticate(token) is first
    now[0] += 2
    refused(auth, token, "token expired")


def test_clock_decides_expiry(jwks_file, keys):
    issued = time.time()
    token = keys.token(exp=int(issued) + 60)
    later = JwtAuthenticator(settings(jwks_file, leeway_s=0), clock=lambda: issued + 61)
    refused(later, token, "token expired")


def test_missing_exp_is_refused(auth, keys):
    refused(auth, keys.token(exp=None), "token has no 'exp' claim")


# --- Wrong issuer, audience, signature, algorithm ---


def test_wrong_audience(auth, keys):
    refused(auth, keys.token(aud="another-service"), "wrong audience: expected signoff")


def test_missing_audience(auth, keys):
    refused(auth, keys.token(aud=None), "token has no 'aud' claim")


def test_wrong_issuer(auth, keys):
    refused(auth, keys.token(iss="https://evil.example.com"), f"wrong issuer: expected {ISSUER}")


def test_bad_signature_from_another_key(auth, keys):
    refused(auth, keys.token("rsa", key=keys.other_rsa), "bad signature")


def test_tampered_payload(auth, keys):
    header, _, sig = keys.token(roles=["agent"]).split(".")
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": time.time() + 60}
    body["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    refused(auth, f"{header}.{forged}.{sig}", "bad signature")


def test_alg_none_is_refused(auth):
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "exp": time.time() + 60, "roles": "admin"},
        None,
        algorithm="none",
        headers={"kid": "rsa"},
    )
    refused(auth, token, "algorithm 'none' not allowed (allowed: RS256, ES256, EdDSA)")


def test_hs256_signed_with_the_public_key_is_refused(auth, keys):
    # The classic key-confusion attack: use the public key (which anyone has) as an HMAC secret.
    public_pem = (
        keys.private["rsa"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "root", "exp": int(time.time()) + 60}
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"rsa","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=")
    import hmac as hmac_mod

    sig = hmac_mod.new(public_pem, header + b"." + payload, "sha256").digest()
    token = b".".join([header, payload, base64.urlsafe_b64encode(sig).rstrip(b"=")]).decode()
    refused(auth, token, "algorithm 'HS256' not allowed (allowed: RS256, ES256, EdDSA)")


def test_algorithm_outside_the_allow_list(jwks_file, keys):
    auth = JwtAuthenticator(settings(jwks_file, algorithms=["ES256"]))
    refused(auth, keys.token("rsa"), "algorithm 'RS256' not allowed (allowed: ES256)")


def test_token_alg_must_match_the_key(auth, keys):
    # Signed with the EC key but pointing at the RSA key's kid.
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "a", "exp": time.time() + 60},
        keys.private["ec"],
        algorithm="ES256",
        headers={"kid": "rsa"},
    )
    refused(auth, token, "algorithm does not match the signing key")


def test_unknown_kid(auth, keys):
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "a", "exp": time.time() + 60},
        keys.private["rsa"],
        algorithm="RS256",
        headers={"kid": "retired"},
    )
    refused(auth, token, "unknown signing key")


@pytest.mark.parametrize("token", ["a.b.c", "not a jwt", "eyJhbGciOiJSUzI1NiJ9..."])
def test_malformed_jwt(auth, token):
    refused(auth, token, "malformed JWT")


def test_missing_token(auth):
    refused(auth, None, "missing bearer token")


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": None}, "claim 'sub' must be a non-empty string"),
        ({"sub": ""}, "claim 'sub' must be a non-empty string"),
        (
            {"roles": {"agent": True}},
            "claim 'roles' must be a list of strings or a space-separated string",
        ),
        (
            {"roles": ["agent", 3]},
            "claim 'roles' must be a list of strings or a space-separated string",
        ),
        ({"signoff_act_for_others": "yes"}, "claim 'signoff_act_for_others' must be true or false"),
    ],
)
def test_malformed_claims(auth, keys, claims, message):
    refused(auth, keys.token(**claims), message)


# --- JWKS file problems are config errors ---


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read JWKS"),
        ('{"keys": []}', "unusable JWKS"),
        ("[]", "a JWKS is a JSON object with a 'keys' list"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}', "key 's' is private"),
    ],
)
def test_bad_jwks_file(tmp_path, content, message):
    path = tmp_path / "jwks.json"
    path.write_text(content)
    with pytest.raises(AuthConfigError, match=message):
        JwtAuthenticator(settings(path))


def test_jwks_file_with_a_private_key_is_refused(tmp_path, keys):
    jwk = RSAAlgorithm.to_jwk(keys.private["rsa"], as_dict=True)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k"}]}))
    with pytest.raises(AuthConfigError, match="key 'k' is private or shared-secret"):
        JwtAuthenticator(settings(path))


# --- JWKS from a URL: a real local HTTP server ---


class _JwksHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        server.hits += 1  # type: ignore[attr-defined]
        status, body = server.reply  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server(keys) -> Iterator[http.server.HTTPServer]:
    # Bound and listening once constructed: no need to wait for the thread.
    server = http.server.HTTPServer(("127.0.0.1", 0), _JwksHandler)
    server.hits = 0  # type: ignore[attr-defined]
    server.reply = (200, json.dumps(keys.jwks()).encode())  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def url_settings(url: str, **kw: Any) -> JwtSettings:
    return JwtSettings(jwks_url=url, issuer=ISSUER, audience=AUDIENCE, **kw)


def test_jwks_url_verifies_and_caches_the_key_set(jwks_server, keys):
    url = f"http://127.0.0.1:{jwks_server.server_port}/jwks"
    auth = JwtAuthenticator(url_settings(url))
    assert auth.authenticate(keys.token("ec", roles=["agent"])).roles == {"agent"}
    assert auth.authenticate(keys.token("ed")).id == "alice"
    assert auth.authenticate(keys.token("rsa", sub="bob")).id == "bob"
    assert jwks_server.hits == 1
    refused(auth, keys.token("rsa", key=keys.other_rsa), "bad signature")


def test_jwks_url_unknown_kid(jwks_server, keys):
    jwks_server.reply = (200, json.dumps(keys.jwks(("rsa",))).encode())
    auth = JwtAuthenticator(url_settings(f"http://127.0.0.1:{jwks_server.server_port}/"))
    refused(auth, keys.token("ec"), "unknown signing key")


@pytest.mark.parametrize(
    ("status", "body"), [(500, b"oops"), (200, b"<html>"), (200, b'{"keys": []}')]
)
def test_jwks_url_failure_is_unauthenticated_and_logged(jwks_server, keys, caplog, status, body):
    jwks_server.reply = (status, body)
    auth = JwtAuthenticator(url_settings(f"http://127.0.0.1:{jwks_server.server_port}/jwks"))
    token = keys.token()
    with caplog.at_level(logging.WARNING, logger="signoff.auth"):
        refused(auth, token, "cannot fetch JWKS")
    assert any(r.message.startswith("auth.jwks_") for r in caplog.records)
    assert all(token not in r.getMessage() + str(vars(r)) for r in caplog.records)


def test_jwks_url_refused_connection(keys, caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nobody listens there
    auth = JwtAuthenticator(url_settings(f"http://127.0.0.1:{port}/jwks"))
    with caplog.at_level(logging.WARNING, logger="signoff.auth"):
        refused(auth, keys.token(), "cannot fetch JWKS")
    assert [r.message for r in caplog.records] == ["auth.jwks_fetch_failed"]


def test_jwks_url_that_hangs_times_out(keys):
    # A socket that listens but never answers: the kernel accepts, nobody replies.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/jwks"
        auth = JwtAuthenticator(url_settings(url, jwks_timeout_s=0.2))
        start = time.monotonic()
        refused(auth, keys.token(), "cannot fetch JWKS")
        assert time.monotonic() - start < 5


# --- Chain: static tokens first, JWTs to the JWT authenticator ---


@pytest.fixture
def chain(tmp_path, jwks_file) -> ChainAuthenticator:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        f"tokens:\n  - {{sha256: {hash_token('static-1')}, identity: bot, roles: [agent]}}\n"
    )
    built = build_authenticator(
        AuthSettings(
            tokens_file=tokens,
            jwt=JwtSettings(jwks_file=jwks_file, issuer=ISSUER, audience=AUDIENCE),
        )
    )
    assert isinstance(built, ChainAuthenticator)
    return built


def test_chain_accepts_static_tokens_and_jwts(chain, keys):
    assert chain.authenticate("static-1").source == "tokens"
    assert chain.authenticate(keys.token(roles="auditor")).source == "jwt"


def test_chain_sends_a_jwt_to_jwt_only(chain, keys):
    # The precise JWT error, not the tokens file's "unknown token".
    refused(chain, keys.token(exp=int(time.time()) - 600), "token expired")


def test_chain_unknown_static_token(chain):
    refused(chain, "static-2", "unknown token")


def test_chain_without_jwt_treats_jwt_shaped_tokens_as_static(tmp_path, keys):
    token = keys.token()
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - {{sha256: {hash_token(token)}, identity: odd}}\n")
    assert ChainAuthenticator([TokensAuthenticator(path)]).authenticate(token).id == "odd"
