"""The Dockerfile checker's reading of the Dockerfile (its run is .ci/run's job: ~30 s, pip)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "check_dockerfile", ROOT / "scripts/check_dockerfile.py"
)
assert _spec is not None
assert _spec.loader is not None
cd = importlib.util.module_from_spec(_spec)
sys.modules["check_dockerfile"] = cd
_spec.loader.exec_module(cd)


def test_the_dockerfile_has_what_the_issue_asks_for():
    build, final = cd.parse((ROOT / "Dockerfile").read_text())
    for stage in (build, final):
        assert stage.image.startswith("python:3.11-slim")  # Debian, not musl
    steps = dict(final.steps)
    assert steps["USER"] == "signoff"
    assert steps["VOLUME"] == '["/data", "/policies"]'
    options, argv = cd.healthcheck(steps["HEALTHCHECK"])
    assert argv[:2] == ["signoff", "health"]
    assert cd.seconds(options["start-period"], 0) >= 10
    assert steps["ENTRYPOINT"] == '["signoff", "serve"]'
    assert any(k == "RUN" and "pip install" in a for k, a in build.steps)


def test_continuations_and_comments():
    [stage] = cd.parse(
        "# c\nFROM python:3.11-slim AS b\nRUN a \\\n # dropped, as Docker does\n  && b\n"
    )
    assert stage.name == "b"
    assert stage.steps == [("RUN", "a  && b")]


def test_moved_paths_and_ports(tmp_path):
    mover = cd.Mover(tmp_path, {"50051": "6000"})
    assert mover.text("sqlite:////data/signoff.db") == f"sqlite:///{tmp_path}/data/signoff.db"
    assert mover.text("/opt/signoff/bin:$PATH") == f"{tmp_path}/opt/signoff/bin:$PATH"
    assert (
        mover.text("0.0.0.0:50051 /srcs /x/data /data")
        == f"0.0.0.0:6000 /srcs /x/data {tmp_path}/data"
    )
    assert mover.text("127.0.0.1:500510") == "127.0.0.1:500510"


@pytest.mark.parametrize(
    ("rel", "out"),
    [
        ("service/signoff/__pycache__", True),
        ("service/signoff/x.pyc", True),
        ("tests/e2e/test_x.py", True),
        ("clients/python/build", True),
        ("service/signoff/serving/server.py", False),
        ("clients/python/signoff_client/__init__.py", False),
        ("policies/refunds.yaml", False),
    ],
)
def test_dockerignore_keeps_caches_and_tests_out_of_the_context(rel, out):
    assert cd.ignored(rel, cd.dockerignore()) is out


def test_env_and_healthcheck_forms():
    assert cd.env_pairs("A=1 B='two words'") == {"A": "1", "B": "two words"}
    assert cd.env_pairs("A one") == {"A": "one"}
    assert cd.expand("/x:$PATH:${HOME}", {"PATH": "/bin", "HOME": "/h"}) == "/x:/bin:/h"
    _, argv = cd.healthcheck("--interval=5s CMD curl -f http://x/")
    assert argv == ["/bin/sh", "-c", "curl -f http://x/"]
    assert cd.seconds("1m30s", 0) == 90
