"""examples/mcp-proxy.yaml runs without an activated virtualenv (a bare `python` is the
proxy's own interpreter), and an upstream that fails at start is one line with its stderr."""

from __future__ import annotations

import shutil
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
