"""examples/mcp-proxy.yaml runs without an activated virtualenv (a bare `python` is the
proxy's own interpreter), and an upstream that fails at start is one line with its stderr."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client

from .conftest import ServerHandle
from .mcp_peers import config, dead_target, proxy_argv, run_proxy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_the_example_config_runs_with_no_python_on_path(
    signoff: ServerHandle, tmp_path: Path
):
    shutil.copy(EXAMPLES / "mcp_payments.py", tmp_path)
    example = (EXAMPLES / "mcp-proxy.yaml").read_text()
    assert "    command: python " in example
    here = tmp_path / "mcp-proxy.yaml"
    here.write_text(example.replace("127.0.0.1:50051", signoff.target))
    nothing = tmp_path / "empty-bin"
    nothing.mkdir()
    # What an MCP client app or a shell without the virtualenv activated gives the proxy.
    params = StdioServerParameters(
        command=sys.executable, args=proxy_argv(here), env={"PATH": str(nothing)}
    )
    with (tmp_path / "proxy.stderr").open("w") as err:
        async with (
            stdio_client(params, err) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            # delete_customer is denied whatever its arguments (destructiveHint): not listed.
            assert {"refund", "get_balance"} <= tools
            assert "delete_customer" not in tools
            result = await session.call_tool("refund", {"account": "acct_42", "amount": 50})
    said = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
    assert not result.is_error, said
    assert said == "refunded 50 EUR to acct_42"
    assert (tmp_path / "refunds.jsonl").exists()


def test_an_upstream_that_crashes_at_import_is_one_line_with_its_traceback_tail(
    tmp_path: Path,
):
    script = tmp_path / "broken_upstream.py"
    script.write_text("def load():\n    import signoff_test_no_such_module  # noqa\n\n\nload()\n")
    broken = {"name": "broken", "command": sys.executable, "args": [str(script)]}
    done = run_proxy(config(tmp_path, dead_target(), upstreams=[broken]))
    assert done.returncode == 3
    [line] = done.stderr.splitlines()
    assert line.startswith(f"signoff: upstream 'broken' ({sys.executable} {script}) did not ")
    assert line.endswith(
        "did not start: its process exited; its stderr ends with: "
        f'File "{script}", line 2, in load | '
        "import signoff_test_no_such_module  # noqa | "
        "ModuleNotFoundError: No module named 'signoff_test_no_such_module'"
    ), line


def test_the_in_band_example_approves_for_the_session_rejects_and_leaves_one_to_finance():
    """examples/mcp_in_band.py, as docs/agents.md runs it: an SDK client's elicitation
    callback answers for bob, through the proxy, against a private server."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "mcp_in_band.py")],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    results = re.findall(r"^   (result|error): (.*)$", out, re.M)
    assert results == [
        ("result", "refunded 250 EUR to acct_42"),
        ("result", "refunded 180 EUR to acct_7"),  # the same shape: not asked again
        ("error", "a reviewer (bob) rejected mcp.payments.refund: wrong currency"),
        ("result", "refunded 400 GBP to acct_9"),
    ]
    assert out.count("may the agent run mcp.payments.refund?") == 3
    story = out.split("-- the audit log")[1]
    acts = re.findall(r"^   (review\.\w+)\s+(\w+)\s+(.*?)\s+'(.*)'$", story, re.M)
    first = re.search(r"Review (\S+): you may settle it yourself", out)
    assert first is not None
    approved, rejected = "approved by the requester in band", "rejected by the requester in band"
    assert acts == [
        ("review.approved", "bob", approved, "my customer, fine for today"),
        (
            "review.approved",
            "bob",
            approved,
            f"approved for this session in review {first.group(1)}, not asked again",
        ),
        ("review.rejected", "bob", rejected, "wrong currency"),
        ("review.approved", "alice", "by a finance reviewer", ""),
    ]
