"""A missing extra's hint installs its packages with this interpreter's pip: the extra's
name alone (signoff-client[langgraph]) needs the distribution on an index, which a
checkout's is not, and a bare `pip` may belong to another environment."""

from __future__ import annotations

import shlex
import subprocess
import sys

from signoff_client._extras import extra_requirements, install_hint


def test_an_extras_requirements_come_from_the_installed_metadata():
    assert extra_requirements("signoff-client", "receipts") == ["cryptography>=42"]
    assert extra_requirements("signoff", "mcp") == ["mcp<3,>=2.3"]
    assert sorted(extra_requirements("signoff-client", "langgraph")) == [
        "langchain-core<2,>=1.8",
        "langgraph<2,>=1.2",
    ]
    # "fast" must not also match a longer extra's name, nor a base requirement.
    assert extra_requirements("signoff-client", "fast") == ["orjson<4,>=3.10"]


def test_the_hint_runs_this_interpreters_pip():
    assert install_hint("signoff-client", "receipts") == (
        f"{shlex.quote(sys.executable)} -m pip install 'cryptography>=42'"
    )


def test_an_unknown_distribution_or_extra_falls_back_to_the_extras_name():
    assert extra_requirements("signoff-no-such-distribution", "x") == []
    assert install_hint("signoff-no-such-distribution", "x").endswith(
        " -m pip install 'signoff-no-such-distribution[x]'"
    )
    assert install_hint("signoff-client", "no-such-extra").endswith(
        " -m pip install 'signoff-client[no-such-extra]'"
    )


def test_verifying_a_receipt_without_cryptography_prints_the_hint():
    code = (
        "import sys\n"
        "sys.modules['cryptography'] = None\n"
        "from signoff_client.receipts import _load_key\n"
        "try:\n"
        "    _load_key(b'')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == (
        "verifying receipts needs the cryptography package: "
        f"{shlex.quote(sys.executable)} -m pip install 'cryptography>=42'"
    )
