"""`signoff mcp-proxy --schemas` against real MCP upstreams (tests/e2e/mcp_upstream_refund.py,
mcp_upstream_schemas.py): the policy file it writes loads beside the example policies, and
a call whose arguments break a tool's schema is refused through the proxy naming the field,
before any rule runs; each thing the conversion drops is named on stderr."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

from signoff.policy import load_bundle

from .conftest import EXAMPLE_POLICIES, MakeServer
from .mcp_peers import config, executed, payments, proxied, run_proxy, text

BANK = Path(__file__).with_name("mcp_upstream_schemas.py")


def _bank() -> dict[str, object]:
    return {"name": "bank", "command": sys.executable, "args": [str(BANK)]}


def _bundle_with(tmp_path: Path, written: str) -> Path:
    """The example policies, and the written file as policies/schemas/tools.yaml."""
    root = tmp_path / "policies"
    shutil.copytree(EXAMPLE_POLICIES, root, ignore=shutil.ignore_patterns("*_test.yaml"))
    (root / "schemas").mkdir()
    (root / "schemas" / "tools.yaml").write_text(written)
    return root


async def test_written_schemas_load_and_a_bad_call_is_refused_naming_the_field(
    make_server: MakeServer, tmp_path: Path
):
    upstreams = [payments(tmp_path), _bank()]
    listed = run_proxy(config(tmp_path, "127.0.0.1:1", upstreams=upstreams), extra=("--schemas",))
    # The bank's `broken` tool gets no schema: exit 1, the file written all the same.
    assert listed.returncode == 1, listed.stderr
    assert listed.stderr.splitlines() == [
        "signoff: mcp.bank.transfer: properties.iban.pattern: unsupported keyword 'pattern' "
        "dropped: it is not checked",
        "signoff: mcp.bank.transfer: properties.memo.anyOf: unsupported keyword 'anyOf' "
        "dropped: it is not checked",
        "signoff: mcp.bank.broken: properties.n.minimum: 'low' is not of type 'number'",
        "signoff: mcp.bank.broken: no schema written",
    ]
    doc = yaml.safe_load(listed.stdout)
    assert doc["actions"] == ["mcp.bank.*", "mcp.payments.*"]
    assert doc["params"]["mcp.payments.refund"]["required"] == ["account", "amount"]
    assert doc["params"]["mcp.bank.transfer"]["properties"]["amount"] == {
        "type": "integer",
        "minimum": 1,
    }
    assert "mcp.bank.broken" not in doc["params"]
    root = _bundle_with(tmp_path, listed.stdout)
    assert {s.glob for s in load_bundle(root).params} >= {
        "mcp.payments.refund",
        "mcp.bank.transfer",
    }

    signoff = make_server(policies=root)
    async with proxied(config(tmp_path, signoff.target, upstreams=upstreams)) as session:
        bad = await session.call_tool("refund", {"account": "acct_1", "amount": "lots"})
        assert bad.is_error
        assert text(bad) == (
            "Signoff cannot take these arguments (arguments.amount): must be a number"
        )
        missing = await session.call_tool("refund", {"amount": 5})
        assert (
            text(missing) == "Signoff cannot take these arguments (arguments.account): is required"
        )
        zero = await session.call_tool("transfer", {"amount": 0, "iban": "DE00"})
        assert (
            text(zero)
            == "Signoff cannot take these arguments (arguments.amount): must be at least 1"
        )
        good = await session.call_tool("refund", {"account": "acct_1", "amount": 50})
        assert text(good) == "refunded 50 EUR to acct_1"
    assert executed(tmp_path) == [
        {"account": "acct_1", "amount": 50.0, "currency": "EUR", "count": 1}
    ]


def test_only_the_named_upstreams_are_listed(tmp_path: Path):
    path = config(tmp_path, "127.0.0.1:1", upstreams=[payments(tmp_path), _bank()])
    listed = run_proxy(path, extra=("--schemas", "--upstream", "payments"))
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""
    doc = yaml.safe_load(listed.stdout)
    assert doc["name"] == "mcp-schemas-payments"
    assert {a.split(".")[1] for a in doc["params"]} == {"payments"}


def test_an_unknown_upstream_is_a_usage_error(tmp_path: Path):
    path = config(tmp_path, "127.0.0.1:1")
    listed = run_proxy(path, extra=("--schemas", "--upstream", "bank"))
    assert listed.returncode == 2
    assert listed.stderr == "signoff: --upstream bank: not in the config (upstreams: payments)\n"
    assert listed.stdout == ""


def test_upstream_without_schemas_is_a_usage_error(tmp_path: Path):
    listed = run_proxy(config(tmp_path, "127.0.0.1:1"), extra=("--upstream", "payments"))
    assert (listed.returncode, listed.stderr) == (2, "signoff: --upstream goes with --schemas\n")


def test_an_upstream_that_does_not_start_writes_nothing(tmp_path: Path):
    path = config(tmp_path, "127.0.0.1:1", upstreams=[payments(tmp_path, "--exit-at-start")])
    listed = run_proxy(path, extra=("--schemas",))
    assert listed.returncode == 3
    assert listed.stdout == ""
    assert "upstream 'payments'" in listed.stderr
    assert "PAYMENTS_API_KEY is not set" in listed.stderr
