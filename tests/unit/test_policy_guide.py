"""docs/policies.md says true things: its policies load, its cases pass, its CEL gives what it says.

Conventions in the guide, read here:
- a ```cel block: one expression per line, `// => <result>`; the result is a JSON value,
  `error: <text>` (evaluation error) or `compile error: <text>`, evaluated against the
  ```yaml example-request block;
- a ```yaml file=NAME block: written into one directory with the others, whose *_test.yaml
  cases must all pass;
- a ```yaml block starting with `name:` is a policy that must load on its own, one
  starting with `cases:` is a test file that must pass against the shipped policies/.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format

from signoff import pb
from signoff.cli.main import main
from signoff.policy import BundleError, load_bundle
from signoff.policy import cel as engine

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "policies.md"
_BLOCK_RE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)


def _blocks(info: str | None = None) -> list[tuple[str, str]]:
    found = [(m[1].strip(), m[2]) for m in _BLOCK_RE.finditer(GUIDE.read_text())]
    return [(i, text) for i, text in found if info is None or i.split()[:1] == [info]]


def _cel_lines() -> list[tuple[str, str]]:
    lines = []
    for _, text in _blocks("cel"):
        for line in text.splitlines():
            expr, sep, want = line.partition("// =>")
            assert sep, f"a cel line without '// =>': {line!r}"
            lines.append((expr.strip(), want.strip()))
    return lines


def _example_activation() -> engine.Activation:
    (text,) = [t for info, t in _blocks("yaml") if info == "yaml example-request"]
    data = yaml.safe_load(text)
    req = json_format.ParseDict(data["request"], pb.common.ActionRequest())
    now = dt.datetime.fromisoformat(data["now"].replace("Z", "+00:00"))
    return engine.Activation(req, now)


def test_the_guide_has_examples_of_every_kind():
    assert len(_cel_lines()) > 40
    infos = [info for info, _ in _blocks("yaml")]
    assert any(i.startswith("yaml file=") for i in infos)
    assert "yaml example-request" in infos


@pytest.mark.parametrize(("expr", "want"), _cel_lines(), ids=lambda v: v[:60])
def test_cel_example_gives_what_the_guide_says(expr, want):
    if want.startswith("compile error:"):
        with pytest.raises(engine.CelError) as err:
            engine.compile(expr)
        assert want.removeprefix("compile error:").strip() in err.value.message
        return
    program = engine.compile(expr)
    if want.startswith("error:"):
        with pytest.raises(engine.CelEvalError) as err:
            program.eval(_example_activation())
        assert want.removeprefix("error:").strip() in str(err.value)
        return
    got = program.eval(_example_activation())
    expected: Any = json.loads(want)
    assert got == expected
    assert type(got) is type(expected)  # 751 is not 751.0: the guide is about exactly that


def test_policies_in_the_guide_load(tmp_path):
    policies = [t for info, t in _blocks("yaml") if info == "yaml" and t.startswith("name:")]
    assert len(policies) >= 3
    for i, text in enumerate(policies):
        root = tmp_path / str(i)
        root.mkdir()
        (root / "p.yaml").write_text(text)
        load_bundle(root)  # raises BundleError with file:line:column if the guide is wrong


def test_worked_example_cases_pass(tmp_path, capsys):
    for info, text in _blocks("yaml"):
        if info.startswith("yaml file="):
            (tmp_path / info.removeprefix("yaml file=")).write_text(text)
    assert main(["policy", "test", str(tmp_path)]) == 0, capsys.readouterr().out


def test_test_file_example_passes_against_the_shipped_policies(tmp_path, capsys):
    (text,) = [t for info, t in _blocks("yaml") if info == "yaml" and t.startswith("cases:")]
    for path in (REPO / "policies").glob("*.yaml"):
        if not path.name.endswith("_test.yaml"):
            shutil.copy(path, tmp_path / path.name)
    (tmp_path / "guide_test.yaml").write_text(text)
    assert main(["policy", "test", str(tmp_path)]) == 0, capsys.readouterr().out


TYPOS = """\
name: typos
rules:
  - name: tags-typo
    when: '"vip" in principal.tgs'
    decision: deny
    reason: misspelled field
  - name: action-typo
    when: acton.name == "refund.issue"
    decision: deny
    reason: misspelled variable
"""


def test_typos_in_field_and_variable_names_are_load_errors_with_positions(tmp_path):
    (tmp_path / "typos.yaml").write_text(TYPOS)
    with pytest.raises(BundleError) as err:
        load_bundle(tmp_path)
    assert [str(e) for e in err.value.errors] == [
        "typos.yaml:4:30: tags-typo: when: undefined field 'tgs' not found in struct "
        "'signoff.v1.Principal'",
        "typos.yaml:8:16: action-typo: when: undeclared reference to 'acton.name'",
    ]
