"""`signoff explain` as a policy author runs it: offline on a directory, online on a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import EXAMPLE_POLICIES, ServerHandle

SIGNOFF = [sys.executable, "-m", "signoff.cli.main", "explain"]
REFUND = ["--action", "refund.issue", "--principal", "support-bot-7"]


def _explain(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    proc = subprocess.run(
        [*SIGNOFF, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


def _where(server: ServerHandle | None) -> list[str]:
    if server is None:
        return ["--policies", str(EXAMPLE_POLICIES)]
    return ["--server", server.target, "--token", "support-bot-7"]


@pytest.fixture(params=["offline", "online"])
def where(request: pytest.FixtureRequest) -> list[str]:
    """Offline against the example directory, or online against a server on it."""
    if request.param == "offline":
        return _where(None)
    return _where(request.getfixturevalue("server"))


def test_a_750_refund_is_explained_rule_by_rule(where: list[str]):
    code, out, err = _explain(*where, *REFUND, "--params", '{"amount": 750, "currency": "EUR"}')
    assert code == 0, err
    assert out.startswith("REQUIRE_REVIEW by finance: Refund above 500 needs a finance reviewer.")
    assert "decided by: a rule requires review: rule large-refund (refunds.yaml:35)" in out
    assert "  ✔ large-refund  refunds.yaml:35  review\n      when    vars.amount > 500" in out
    assert "  ✘ small-refund  refunds.yaml:43  allow\n      when    vars.amount <= 500" in out
    assert "    amount = 750\n" in out
    assert "very-large-refund-two-approvers  refunds.yaml:49  review (shadow)" in out


def test_a_shadow_rule_shows_what_it_would_have_decided(where: list[str]):
    code, out, err = _explain(*where, *REFUND, "--params", '{"amount": 6000}')
    assert code == 0, err
    assert "  ~ very-large-refund-two-approvers  refunds.yaml:49  " in out
    assert "shadow: would have decided review" in out
    assert out.startswith("REQUIRE_REVIEW by finance:")  # the shadow rule never decides


def test_json_is_the_explanation_message(where: list[str]):
    code, out, err = _explain(*where, *REFUND, "--params", '{"amount": 750}', "--json")
    assert code == 0, err
    x = json.loads(out)
    assert x["decision"]["outcome"] == "OUTCOME_REQUIRE_REVIEW"
    assert x["decided_by"].startswith("a rule requires review: rule large-refund")
    assert x["applicable_files"] == ["refunds.yaml"]
    rules = {r["rule"]: r for r in x["rules"]}
    assert rules["large-refund"]["matched"] is True
    assert "matched" not in rules["small-refund"]  # proto3 JSON leaves false out
    assert {"policy": "refunds", "name": "amount", "value": 750} in x["variables"]
    assert "decision_id" not in x["decision"]  # nothing was decided


def test_offline_and_online_agree(server: ServerHandle):
    args = [*REFUND, "--params", '{"amount": 750}', "--json"]
    offline = json.loads(_explain(*_where(None), *args)[1])
    online = json.loads(_explain(*_where(server), *args)[1])
    for x in (offline, online):
        del x["decision"]["evaluated_at"]
    assert offline == online


def test_an_error_shows_the_cel_message_and_what_on_error_made_of_it(where: list[str]):
    code, out, err = _explain(*where, *REFUND, "--params", '{"currency": "EUR"}')
    assert code == 0, err
    assert "  ! large-refund  refunds.yaml:35  review, failed to evaluate" in out
    assert '      error   when: Key not found in map : "amount"' in out
    assert "    amount  ! error:" in out


def test_a_request_file_and_flags_combine(tmp_path: Path):
    req = tmp_path / "req.yaml"
    req.write_text(
        "action: {name: refund.issue, params: {amount: 100}}\n"
        "resource: {kind: account, id: acct_9, attributes: {tier: vip}}\n"
    )
    code, out, err = _explain(*_where(None), "--request", str(req), "--params", '{"amount": 80}')
    assert code == 0, err
    assert out.startswith("REQUIRE_REVIEW by finance-leads: VIP account acct_9: refund of 80")


def test_an_action_no_policy_covers_gets_the_default(where: list[str]):
    code, out, _ = _explain(*where, "--action", "tea.brew", "--principal", "support-bot-7")
    assert code == 0
    assert "decided by: no rule matched: default decision" in out
    assert "no policy file applies to this action" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--params", "{amount: 1}"], "signoff: --params: not JSON"),
        (["--params", "[1]"], "signoff: --params: expected a JSON object, got list"),
        (["--context", "nope"], "signoff: --context: not JSON"),
        (["--resource", "{"], "signoff: --resource: not JSON"),
        (["--principal", '{"id": 1'], "signoff: --principal: not JSON"),
        (["--principal", '{"kind": "robot"}'], "principal.kind: 'robot' is not one of"),
    ],
)
def test_bad_json_in_a_flag_exits_2_naming_the_flag(args: list[str], message: str):
    code, out, err = _explain(*_where(None), "--action", "refund.issue", *args)
    assert (code, out) == (2, "")
    assert message in err


def test_bad_request_files_and_missing_action_exit_2(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("action: [\n")
    code, _, err = _explain(*_where(None), "--request", str(bad))
    assert code == 2
    assert f"--request {bad}:" in err
    code, _, err = _explain(*_where(None), "--params", "{}")
    assert code == 2
    assert "--action NAME" in err


def test_policies_that_do_not_load_print_file_line_column(
    policy_dir: Callable[[dict[str, str]], Path],
):
    root = policy_dir(
        {"p.yaml": "name: p\nrules:\n  - name: r\n    when: vars.nope > 1\n    decision: deny\n"}
    )
    code, _, err = _explain("--policies", str(root), "--action", "a.b")
    assert code == 2
    assert f"{root}/p.yaml:3:5: r: reason:" in err  # no reason


BYTES_POLICY = """\
name: b
variables:
  raw: bytes(action.params.note)
  text: action.params.note
rules:
  - name: r
    when: size(vars.raw) > 1
    decision: allow
    reason: ok
"""


def test_bytes_are_shown_as_cel_writes_them(policy_dir: Callable[[dict[str, str]], Path]):
    root = policy_dir({"b.yaml": BYTES_POLICY})
    code, out, err = _explain(
        "--policies", str(root), "--action", "a.b", "--params", '{"note": "h\\"é"}'
    )
    assert code == 0, err
    assert '    raw = b"h\\"\\xc3\\xa9"\n' in out
    assert '    text = "h\\"é"\n' in out  # the string beside it stays a JSON string
    assert "bytearray" not in out


def test_an_unreachable_server_exits_3():
    code, _, err = _explain("--server", "127.0.0.1:1", "--action", "a.b", "--timeout", "2")
    assert code == 3
    assert "127.0.0.1:1" in err


def test_a_reader_that_leaves_early_ends_it_quietly_with_141():
    """`signoff explain ... | head -1`: the reader's end of the pipe is closed before the CLI
    writes; exit 141 (as a SIGPIPE death would), no BrokenPipeError traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    args = [*SIGNOFF, *_where(None), *REFUND, "--params", '{"amount": 750}']
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write
    try:
        gone = subprocess.run(args, stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=60)
    finally:
        os.close(write_end)
    assert (gone.returncode, gone.stderr.decode()) == (141, "")
    kept = subprocess.run(args, capture_output=True, env=env, timeout=60, check=False)
    assert (kept.returncode, kept.stderr.decode()) == (0, "")
    assert kept.stdout.startswith(b"REQUIRE_REVIEW by finance")


def test_params_that_break_the_action_schema_are_refused_naming_the_field(where: list[str]):
    # policies/refunds.yaml declares the params of refund.*: amount is a number.
    code, out, err = _explain(*where, *REFUND, "--params", '{"amount": "lots"}')
    assert code == 2, (out, err)
    assert "action.params.amount: must be a number" in err
    assert out == ""
