"""TLS and mTLS on both ports, end to end: a real server on certificates from a throwaway CA.

SQLite only: TLS is the transport, the store does not matter.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from signoff import pb
from signoff.serving.doctor import run_checks
from signoff.settings.model import ConfigError, Settings
from signoff_client import AsyncClient, Client, tls_credentials
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from ..pki import Ca, Issued
from .conftest import EXAMPLE_POLICIES, MakeServer, ServerHandle, write_tokens

R = pb.review
WHOAMI = "/signoff.v1.ReviewService/WhoAmI"
# Under TLS 1.3 the client finishes its side of the handshake before the server checks the
# client certificate, so the refusal arrives as the first read fails.
REFUSED = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
JSON = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}


@dataclass
class Pki:
    """Two CAs and the certificates the tests use."""

    ca: Ca
    other: Ca
    server: Issued
    billing: Issued  # mapped by subject
    gateway: Issued  # mapped by URI SAN
    stranger: Issued  # from the right CA, not mapped
    foreign: Issued  # from the other CA, with a mapped subject
    tmp: Path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, other = Ca(tmp_path, "Test CA"), Ca(tmp_path, "Other CA")
    return Pki(
        ca=ca,
        other=other,
        server=ca.issue("server", "server-1", server=True),
        billing=ca.issue("billing", "billing-agent", org="Acme"),
        gateway=ca.issue("gateway", "gw", uris=("spiffe://acme.test/gateway",)),
        stranger=ca.issue("stranger", "stranger"),
        foreign=other.issue("foreign", "billing-agent", org="Acme"),
        tmp=tmp_path,
    )


def _tls(pki: Pki, mutual: bool = False) -> dict[str, Any]:
    tls: dict[str, Any] = {"cert_file": pki.server.cert, "key_file": pki.server.key}
    if mutual:
        tls |= {"client_ca_file": pki.ca.pem, "client_auth": "require"}
    return tls


MTLS_AUTH = {
    "mtls": {
        "identities": [
            {"subject": "CN=billing-agent, O=Acme", "roles": ["agent"]},
            {
                "uri": "spiffe://acme.test/gateway",
                "identity": "gateway",
                "roles": ["agent", "reviewer:finance"],
                "act_for_others": True,
            },
        ]
    }
}


def _whoami(server: ServerHandle, creds: grpc.ChannelCredentials | None, token: str = "") -> Any:
    md = (("authorization", f"Bearer {token}"),) if token else ()
    channel = server.channel() if creds is None else grpc.secure_channel(server.target, creds)
    with channel:
        stub = review_pb2_grpc.ReviewServiceStub(channel)
        return stub.WhoAmI(R.WhoAmIRequest(), metadata=md, timeout=10)


def _refused(server: ServerHandle, creds: grpc.ChannelCredentials | None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        _whoami(server, creds)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
    return err.value


def _served_cn(port: int, ca: Path, alpn: str, client: Issued | None = None) -> str:
    """The CN of the certificate the server presents to a new connection."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols([alpn])
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cn = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value)


def _https(pki: Pki, client: Issued | None = None, ca: Path | None = None) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(ca or pki.ca.pem))
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    return httpx.Client(verify=ctx, timeout=10)


# -- TLS ------------------------------------------------------------------------------------


def test_client_over_tls_with_a_token(make_server: MakeServer, pki: Pki) -> None:
    tokens = write_tokens(pki.tmp, {"t-bot": ("bot", ["agent"])})
    server = make_server(tls=_tls(pki), auth={"tokens_file": tokens})
    creds = tls_credentials(ca=pki.ca.pem)
    with Client(server.target, token="t-bot", credentials=creds) as client:
        decision = client.evaluate("refund.issue", {"amount": 10, "currency": "EUR"})
    assert decision.allowed
    assert _whoami(server, creds, "t-bot").id == "bot"

    async def from_asyncio() -> bool:
        async with AsyncClient(server.target, token="t-bot", credentials=creds) as client:
            return (await client.evaluate("refund.issue", {"amount": 10})).allowed

    assert asyncio.run(from_asyncio())


def test_client_trusting_another_ca_fails_the_handshake(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(tls=_tls(pki))
    err = _refused(server, tls_credentials(ca=pki.other.pem))
    assert "handshake" in (err.details() or "").lower()


def test_plaintext_client_cannot_talk_to_a_tls_port(make_server: MakeServer, pki: Pki) -> None:
    _refused(make_server(tls=_tls(pki)), None)


def test_connect_over_https_and_the_console(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(tls=_tls(pki))
    assert server.http_url is not None
    assert server.http_url.startswith("https://")
    with _https(pki) as http:
        r = http.post(server.http_url + WHOAMI, content=b"{}", headers=JSON | _bearer("carol"))
        assert r.status_code == 200, r.text
        assert r.json()["id"] == "carol"
        assert http.get(server.http_url + "/healthz").text == "ok\n"
    with _https(pki, ca=pki.other.pem) as http, pytest.raises(httpx.ConnectError) as err:
        http.get(server.http_url + "/healthz")
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)


def test_http_port_can_stay_plain_behind_a_proxy(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(tls=_tls(pki) | {"http": False})
    assert server.http_url is not None
    assert httpx.get(server.http_url + "/healthz").text == "ok\n"
    assert _whoami(server, tls_credentials(ca=pki.ca.pem)).id == "dev"


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("expired", "tls.cert_file (SIGNOFF_TLS__CERT_FILE): {cert}: certificate expired on"),
        ("mismatch", "tls.key_file (SIGNOFF_TLS__KEY_FILE): {key}: does not match the certificate"),
        ("garbage", "tls.cert_file (SIGNOFF_TLS__CERT_FILE): {cert}: not a PEM certificate"),
    ],
)
def test_start_refuses_unusable_server_files(
    make_server: MakeServer, pki: Pki, broken: str, message: str
) -> None:
    cert, key = pki.server.cert, pki.server.key
    if broken == "expired":
        old = pki.ca.issue("old", "old", server=True, expired=True)
        cert, key = old.cert, old.key
    elif broken == "mismatch":
        key = pki.billing.key
    else:
        cert = pki.tmp / "garbage.pem"
        cert.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as err:
        make_server(tls={"cert_file": cert, "key_file": key})
    assert str(err.value).startswith(message.format(cert=cert, key=key))
    assert "\n" not in str(err.value)


# -- mTLS -----------------------------------------------------------------------------------


def test_mapped_client_certificates_are_identities(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(tls=_tls(pki, mutual=True), auth=MTLS_AUTH)
    billing = _whoami(server, tls_credentials(pki.ca.pem, pki.billing.cert, pki.billing.key))
    assert (billing.id, list(billing.roles)) == ("billing-agent", ["agent"])
    assert not billing.act_for_others
    gateway = _whoami(server, tls_credentials(pki.ca.pem, pki.gateway.cert, pki.gateway.key))
    assert gateway.id == "gateway"
    assert list(gateway.roles) == ["agent", "reviewer:finance"]
    assert gateway.act_for_others


def test_a_client_certificates_identity_gets_its_facts_from_the_principals_directory(
    make_server: MakeServer, pki: Pki
) -> None:
    # The tokens file may hold no tokens at all: its `principals` vouch for mTLS identities
    # and for the principals a gateway names. The example refunds policy sends a principal
    # tagged vip to finance-leads even for 50.
    tokens = write_tokens(pki.tmp, {}, principals={"billing-agent": {"tags": ["vip"]}})
    server = make_server(tls=_tls(pki, mutual=True), auth={**MTLS_AUTH, "tokens_file": tokens})

    def refund(issued: Issued, principal: str = "", tags: tuple[str, ...] = ()) -> str:
        req = pb.common.ActionRequest()
        req.action.name = "refund.issue"
        req.action.params.update({"amount": 50})
        req.principal.id = principal
        req.principal.tags.extend(tags)
        creds = tls_credentials(pki.ca.pem, issued.cert, issued.key)
        with grpc.secure_channel(server.target, creds) as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            return str(stub.Evaluate(req, timeout=10).matched_rules[0].rule)

    assert refund(pki.billing) == "vip-account"
    assert refund(pki.gateway, "billing-agent") == "vip-account"
    assert refund(pki.gateway, "someone-else", tags=("vip",)) == "small-refund"


def test_unmapped_client_certificate_is_unauthenticated(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(tls=_tls(pki, mutual=True), auth=MTLS_AUTH)
    with pytest.raises(grpc.RpcError) as err:
        _whoami(server, tls_credentials(pki.ca.pem, pki.stranger.cert, pki.stranger.key))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details() == (
        "client certificate 'CN=stranger,O=Signoff Tests' is not mapped to an identity "
        "(auth.mtls.identities)"
    )


def test_without_a_client_certificate_the_handshake_is_refused(
    make_server: MakeServer, pki: Pki
) -> None:
    server = make_server(tls=_tls(pki, mutual=True), auth=MTLS_AUTH)
    _refused(server, tls_credentials(ca=pki.ca.pem))
    assert server.http_url is not None
    with _https(pki) as http, pytest.raises(REFUSED):
        http.get(server.http_url + "/healthz")


def test_a_client_certificate_from_another_ca_is_refused(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(tls=_tls(pki, mutual=True), auth=MTLS_AUTH)
    _refused(server, tls_credentials(pki.ca.pem, pki.foreign.cert, pki.foreign.key))
    assert server.http_url is not None
    with _https(pki, pki.foreign) as http, pytest.raises(REFUSED):
        http.get(server.http_url + "/healthz")


def test_a_token_wins_over_the_certificate(make_server: MakeServer, pki: Pki) -> None:
    tokens = write_tokens(pki.tmp, {"t-ann": ("ann", ["auditor"])})
    server = make_server(tls=_tls(pki, mutual=True), auth=MTLS_AUTH | {"tokens_file": tokens})
    creds = tls_credentials(pki.ca.pem, pki.billing.cert, pki.billing.key)
    assert _whoami(server, creds, "t-ann").id == "ann"
    assert _whoami(server, creds).id == "billing-agent"
    with pytest.raises(grpc.RpcError) as err:
        _whoami(server, creds, "t-unknown")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_tokens_are_refused_when_only_certificates_are_configured(
    make_server: MakeServer, pki: Pki
) -> None:
    server = make_server(tls=_tls(pki, mutual=True), auth=MTLS_AUTH)
    with pytest.raises(grpc.RpcError) as err:
        _whoami(server, tls_credentials(pki.ca.pem, pki.billing.cert, pki.billing.key), "x")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authenticate with the client certificate alone" in (err.value.details() or "")


def test_connect_over_mtls_names_the_certificate(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(tls=_tls(pki, mutual=True), auth=MTLS_AUTH)
    assert server.http_url is not None
    with _https(pki, pki.billing) as http:
        r = http.post(server.http_url + WHOAMI, content=b"{}", headers=JSON)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == "billing-agent"
    with _https(pki, pki.stranger) as http:
        r = http.post(server.http_url + WHOAMI, content=b"{}", headers=JSON)
        assert r.status_code == 401
        assert "not mapped to an identity" in r.json()["message"]


def test_mtls_identities_need_client_auth(make_server: MakeServer, pki: Pki) -> None:
    with pytest.raises(ConfigError, match=r"^auth.mtls: client certificates as identities need"):
        make_server(tls=_tls(pki), auth=MTLS_AUTH)


def test_mtls_is_not_dev_mode(make_server: MakeServer, pki: Pki) -> None:
    with pytest.raises(ConfigError, match="dev mode"):
        make_server(tls=_tls(pki, mutual=True), listen="0.0.0.0:0")
    server = make_server(tls=_tls(pki, mutual=True), auth=MTLS_AUTH, listen="0.0.0.0:0")
    assert server.running.port > 0  # started: the loopback rule is dev mode's only


# -- rotation -------------------------------------------------------------------------------


def _replace(src: Path, dst: Path) -> None:
    """Atomically, as a deployment rotates files (write aside, then rename)."""
    tmp = dst.with_suffix(".new")
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, dst)


def test_rotated_certificate_is_served_to_new_connections(
    make_server: MakeServer, pki: Pki
) -> None:
    server = make_server(tls=_tls(pki, mutual=True), auth=MTLS_AUTH)
    grpc_port, http_port = server.running.port, server.running.http_port
    assert http_port is not None
    billing = pki.billing
    assert _served_cn(grpc_port, pki.ca.pem, "h2", billing) == "server-1"
    assert _served_cn(http_port, pki.ca.pem, "http/1.1", billing) == "server-1"
    new = pki.ca.issue("server-2", "server-2", server=True)

    # Half a rotation (the certificate without its key) is refused; the old pair still serves.
    _replace(new.cert, pki.server.cert)
    assert _served_cn(grpc_port, pki.ca.pem, "h2", billing) == "server-1"
    assert _served_cn(http_port, pki.ca.pem, "http/1.1", billing) == "server-1"

    _replace(new.key, pki.server.key)
    assert _served_cn(grpc_port, pki.ca.pem, "h2", billing) == "server-2"
    assert _served_cn(http_port, pki.ca.pem, "http/1.1", billing) == "server-2"
    assert _whoami(server, tls_credentials(pki.ca.pem, billing.cert, billing.key)).id == (
        "billing-agent"
    )


# -- CLI ------------------------------------------------------------------------------------


def test_cli_connects_with_ca_and_client_certificate(make_server: MakeServer, pki: Pki) -> None:
    server = make_server(tls=_tls(pki, mutual=True), auth=MTLS_AUTH)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    cli = [sys.executable, "-m", "signoff.cli.main", "reviews", "list", "--json"]
    env = base | {
        "SIGNOFF_SERVER": server.target,
        "SIGNOFF_CA": str(pki.ca.pem),
        "SIGNOFF_CLIENT_CERT": str(pki.gateway.cert),
        "SIGNOFF_CLIENT_KEY": str(pki.gateway.key),
    }
    creds = tls_credentials(pki.ca.pem, pki.gateway.cert, pki.gateway.key)
    with Client(server.target, credentials=creds) as client:
        review_id = client.evaluate(
            "refund.issue", {"amount": 750, "currency": "EUR"}, principal="bot"
        ).review_id
    ok = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(line)["review_id"] for line in ok.stdout.splitlines()] == [review_id]

    gateway = pki.gateway
    flags = ["--ca", str(pki.other.pem), "--cert", str(gateway.cert), "--key", str(gateway.key)]
    bad = subprocess.run(
        [*cli, *flags, "--server", server.target],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 3
    assert bad.stderr.startswith(f"signoff: cannot reach the server at {server.target} (")
    assert "TLS failed: check --ca" in bad.stderr

    no_cert = subprocess.run(
        [*cli, "--ca", str(pki.ca.pem), "--server", server.target],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert no_cert.returncode == 3
    assert no_cert.stderr.startswith(f"signoff: cannot reach the server at {server.target} (")
    # "Socket closed" after TLS 1.3's handshake, or a failed handshake: both point at --cert.
    assert "--cert" in no_cert.stderr

    missing = subprocess.run(
        [*cli, "--ca", str(pki.tmp / "nope.pem")],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith(f"signoff: TLS: CA file {pki.tmp / 'nope.pem'}: cannot read")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_rotated_client_ca_decides_new_handshakes(make_server: MakeServer, pki: Pki) -> None:
    tls = _tls(pki, mutual=True) | {"client_ca_file": pki.tmp / "clients-ca.pem"}
    _replace(pki.ca.pem, tls["client_ca_file"])
    server = make_server(tls=tls, auth=MTLS_AUTH)
    assert server.http_url is not None
    old = tls_credentials(pki.ca.pem, pki.billing.cert, pki.billing.key)
    new = tls_credentials(pki.ca.pem, pki.foreign.cert, pki.foreign.key)
    assert _whoami(server, old).id == "billing-agent"
    _refused(server, new)

    _replace(pki.other.pem, tls["client_ca_file"])  # now clients of the other CA only
    assert _whoami(server, new).id == "billing-agent"  # the same subject, from the new CA
    _refused(server, old)
    with _https(pki, pki.foreign) as http:
        assert http.get(server.http_url + "/healthz").status_code == 200
    with _https(pki, pki.billing) as http, pytest.raises(REFUSED):
        http.get(server.http_url + "/healthz")


# -- doctor ---------------------------------------------------------------------------------


def _doctor_tls(pki: Pki, **values: Any) -> tuple[str, str]:
    settings = Settings(
        policies=EXAMPLE_POLICIES,
        db=f"sqlite:///{pki.tmp / 'doctor.db'}",
        listen=values.pop("listen", "127.0.0.1:0"),
        http_listen="",
        **values,
    )
    [row] = [r for r in asyncio.run(run_checks(settings)) if r.check == "tls"]
    return row.status, row.detail


def test_doctor_checks_the_tls_files(pki: Pki) -> None:
    assert _doctor_tls(pki) == ("ok", "off")
    status, detail = _doctor_tls(pki, tls=_tls(pki, mutual=True), auth=MTLS_AUTH)
    assert status == "ok"
    assert detail.startswith("CN=server-1,O=Signoff Tests, valid until ")
    assert detail.endswith("; client_auth require; HTTP port TLS")

    old = pki.ca.issue("old", "old", server=True, expired=True)
    status, detail = _doctor_tls(pki, tls={"cert_file": old.cert, "key_file": old.key})
    assert (status, detail.split(": ")[0]) == ("fail", "tls.cert_file (SIGNOFF_TLS__CERT_FILE)")
    assert "certificate expired on" in detail

    soon = pki.ca.issue("soon", "soon", server=True, days=5)
    status, detail = _doctor_tls(pki, tls={"cert_file": soon.cert, "key_file": soon.key})
    assert status == "warn"
    assert detail.endswith("expires in less than 14 days")

    status, detail = _doctor_tls(pki, tls=_tls(pki), auth=MTLS_AUTH)
    assert status == "fail"
    assert detail.startswith("auth.mtls: client certificates as identities need")

    tokens = write_tokens(pki.tmp, {"t": ("bot", ["agent"])})
    status, detail = _doctor_tls(pki, listen="0.0.0.0:0", auth={"tokens_file": tokens})
    assert status == "warn"
    assert detail == (
        "off: listen beyond loopback, tokens in the clear (unless a proxy terminates TLS)"
    )
