"""`signoff policy replay`: real decisions, exported, replayed against a changed policy.

docs/policies.md's worked replay: refunds of 100, 600, 750, 900 and 1200 decided with the shipped
policies (review above 500), replayed with the review threshold raised to 1000.
Dev mode: any bearer token names the caller and holds every role (auditor too).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from signoff import pb
from signoff_client._gen import audit_pb2_grpc, decision_pb2_grpc

from .conftest import EXAMPLE_POLICIES, ServerHandle

SIGNOFF = [sys.executable, "-m", "signoff.cli.main", "policy", "replay"]
AMOUNTS = (100, 600, 750, 900, 1200)


def _replay(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    proc = subprocess.run(
        [*SIGNOFF, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


def _md(who: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who}"),)


def _refund(server: ServerHandle, amount: float) -> pb.common.Decision:
    req = pb.common.ActionRequest(justification="order charged twice")
    req.action.name = "refund.issue"
    req.action.params.update({"amount": amount, "currency": "EUR", "card_number": "4111"})
    req.principal.id = "support-bot-7"
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    return stub.Evaluate(req, metadata=_md("support-bot-7"))


def _export(server: ServerHandle, path: Path) -> None:
    stub = audit_pb2_grpc.AuditServiceStub(server.channel())
    req = pb.audit.ExportAuditRequest(format=pb.audit.EXPORT_FORMAT_JSONL)
    with path.open("wb") as f:
        for chunk in stub.ExportAudit(req, metadata=_md("auditor-ann")):
            f.write(chunk.data)


@pytest.fixture
def recorded(server: ServerHandle, tmp_path: Path) -> tuple[Path, dict[float, str]]:
    """The five refunds decided by the server, and its audit log exported to a file."""
    ids = {a: _refund(server, a).decision_id for a in AMOUNTS}
    export = tmp_path / "audit.jsonl"
    _export(server, export)
    return export, ids


@pytest.fixture
def raised(tmp_path: Path) -> Path:
    """A copy of the example policies with the review threshold at 1000 instead of 500."""
    root = tmp_path / "raised"
    shutil.copytree(EXAMPLE_POLICIES, root)
    text = (root / "refunds.yaml").read_text()
    assert "vars.amount > 500\n" in text
    assert "vars.amount <= 500\n" in text
    text = text.replace("vars.amount > 500\n", "vars.amount > 1000.0\n")
    text = text.replace("vars.amount <= 500\n", "vars.amount <= 1000.0\n")
    (root / "refunds.yaml").write_text(text)
    return root


def _counts(report: dict) -> dict[tuple[str, str, str], int]:
    return {
        (g["old_outcome"], g["new_outcome"], g["new_rule"]): g["count"] for g in report["groups"]
    }


EXPECTED = {
    ("REQUIRE_REVIEW", "AUTO_ALLOW", "small-refund"): 3,
    ("AUTO_ALLOW", "AUTO_ALLOW", "small-refund"): 1,
    ("REQUIRE_REVIEW", "REQUIRE_REVIEW", "large-refund"): 1,
}


def test_raising_the_threshold_allows_600_750_and_900(recorded, raised: Path):
    export, ids = recorded
    code, out, err = _replay("--policies", str(raised), "--from", str(export), "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert (report["total"], report["changed"]) == (5, 3)
    assert _counts(report) == EXPECTED
    [moved] = [g for g in report["groups"] if g["changed"]]
    examples = {e["decision_id"]: e for e in moved["examples"]}
    assert set(examples) == {ids[600], ids[750], ids[900]}
    assert examples[ids[750]]["params"]["amount"] == 750
    assert examples[ids[750]]["old_rule"] == "large-refund"
    # The card number was redacted in the log: replay sees the mask.
    assert examples[ids[750]]["params"]["card_number"] == "[REDACTED]"
    assert report["redacted"] == 5
    assert report["malformed_lines"]["count"] == 0


def test_the_text_report_has_the_table_and_examples(recorded, raised: Path):
    export, ids = recorded
    code, out, _ = _replay("--policies", str(raised), "--from", str(export), "--examples", "1")
    assert code == 0
    assert "replayed 5 decision(s) against" in out
    assert "3 would change outcome (60.0%)" in out
    assert "REQUIRE_REVIEW  AUTO_ALLOW      small-refund  3      yes" in out
    assert f"    {ids[600]}  refund.issue  amount=600 " in out
    assert ids[750] not in out  # one example per group


def test_the_same_policies_change_nothing(recorded):
    export, _ = recorded
    code, out, _ = _replay("--policies", str(EXAMPLE_POLICIES), "--from", str(export), "--json")
    assert code == 0
    assert json.loads(out)["changed"] == 0


def test_malformed_lines_are_counted_not_fatal(recorded, raised: Path, tmp_path: Path):
    export, _ = recorded
    lines = export.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    # Line 2 is not JSON, line 4 is JSON but not an export line, then a cut-off last line.
    broken.write_bytes(
        lines[0] + b"{not json\n" + lines[1] + b'{"seq": 1}\n' + b"".join(lines[2:]) + b'{"seq'
    )
    code, out, err = _replay("--policies", str(raised), "--from", str(broken), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["total"] == 5
    assert report["changed"] == 3
    assert report["malformed_lines"]["count"] == 3
    assert report["malformed_lines"]["first_line"] == 2
    assert "3 malformed line(s) skipped (first at line 2: not JSON" in err
    code, out, err = _replay("--policies", str(raised), "--from", str(broken))
    assert code == 0
    assert "3 would change outcome" in out
    assert "3 malformed line(s) skipped (first at line 2" in err


def test_replay_from_the_server_gives_the_same_counts(server: ServerHandle, recorded, raised):
    code, out, err = _replay(
        "--policies", str(raised), "--server", server.target, "--token", "ann", "--json"
    )
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert (report["total"], report["changed"]) == (5, 3)
    assert _counts(report) == EXPECTED


def test_server_filters_select_the_decisions(server: ServerHandle, recorded, raised):
    other = _refund_named(server, "refund.partial", 700)
    code, out, _ = _replay(
        "--policies", str(raised), "--server", server.target, "--token", "ann",
        "action=refund.partial", "--json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["total"] == 1
    assert report["groups"][0]["examples"][0]["decision_id"] == other


def _refund_named(server: ServerHandle, name: str, amount: float) -> str:
    req = pb.common.ActionRequest()
    req.action.name = name
    req.action.params.update({"amount": amount})
    stub = decision_pb2_grpc.DecisionServiceStub(server.channel())
    return stub.Evaluate(req, metadata=_md("support-bot-7")).decision_id


def test_policies_that_do_not_load_exit_2_with_file_line_column(recorded, raised: Path):
    export, _ = recorded
    (raised / "refunds.yaml").write_text(
        (raised / "refunds.yaml").read_text().replace("vars.amount > 1000.0", "vars.amout > 1000.0")
    )
    code, out, err = _replay("--policies", str(raised), "--from", str(export))
    assert (code, out) == (2, "")
    assert f"{raised}/refunds.yaml:36:" in err
    assert "amout" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "/nonexistent.jsonl"], "--from /nonexistent.jsonl: No such file"),
        (["--from", "x.jsonl", "since=-1d"], "with --from, export with filters instead"),
        (["--server", "127.0.0.1:1", "type=review.opened"], "drop the type filter"),
        (["--server", "127.0.0.1:1", "colour=red"], "unknown filter 'colour'"),
        (["--from", "x.jsonl", "--examples", "-1"], "--examples must be 0 or more"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str):
    code, _, err = _replay("--policies", str(EXAMPLE_POLICIES), *args)
    assert code == 2
    assert message in err


def test_an_unreachable_server_exits_3():
    code, _, err = _replay(
        "--policies", str(EXAMPLE_POLICIES), "--server", "127.0.0.1:1", "--timeout", "2"
    )
    assert code == 3
    assert "cannot reach the server at 127.0.0.1:1" in err
