"""`signoff mcp-proxy` to a Signoff server over TLS: the config's signoff.ca/cert/key, the
--ca/--cert/--key flags over them, and TLS files that cannot be used."""

from __future__ import annotations

from pathlib import Path

from ..pki import Ca
from .conftest import MakeServer
from .mcp_peers import config, dead_target, proxied, run_proxy, text


async def test_the_ca_flag_overrides_the_configs(make_server: MakeServer, tmp_path: Path):
    ca, other = Ca(tmp_path, "Test CA"), Ca(tmp_path, "Other CA")
    server = ca.issue("server", "server-1", server=True)
    signoff = make_server(tls={"cert_file": server.cert, "key_file": server.key})
    # Trusting the other CA, the config alone fails every handshake (and so every call).
    trusting = {"server": signoff.target, "token": "claude-agent", "ca": str(other.pem)}
    path = config(tmp_path, signoff.target, signoff=trusting)
    async with proxied(path, flags=("--ca", str(ca.pem))) as session:
        balance = await session.call_tool("get_balance", {"account": "acct_1"})
    assert not balance.is_error, text(balance)
    assert text(balance) == "acct_1: 100 EUR"
    async with proxied(path) as session:
        refused = await session.call_tool("get_balance", {"account": "acct_1"})
    assert refused.is_error
    assert text(refused).startswith("Signoff is unreachable"), text(refused)


def test_a_bad_tls_file_names_the_flag_or_the_setting_it_came_from(tmp_path: Path):
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n")
    # The config's CA is missing, but the flag's replaces it: the flag's file is the error.
    path = config(tmp_path, dead_target(), signoff={"ca": "no-ca.pem"})
    done = run_proxy(path, extra=("--ca", str(not_pem)))
    assert done.returncode == 2
    assert done.stderr == f"signoff: config error: --ca: CA file {not_pem}: not a PEM file\n"

    done = run_proxy(path)
    assert done.returncode == 2
    assert done.stderr == (
        f"signoff: config error: signoff.ca: CA file {tmp_path / 'no-ca.pem'}: "
        "cannot read: No such file or directory\n"
    )

    done = run_proxy(config(tmp_path, dead_target()), extra=("--cert", str(not_pem)))
    assert done.returncode == 2
    assert done.stderr == (
        "signoff: config error: --cert: cert and key go together: "
        "a client certificate needs its key\n"
    )
