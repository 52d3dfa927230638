"""The README and docs/ say true things: links resolve, runnable blocks run, nothing stale.

The checker is scripts/check_docs.py; the conventions it reads (the `<!-- runnable -->`
marker) are described in docs/architecture.md, "The docs".
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


cd = _load("check_docs", ROOT / "scripts" / "check_docs.py")
bench_run = _load("bench_run", ROOT / "bench" / "run.py")
DOCS = cd.default_files()
BLOCKS = cd.runnable_blocks(DOCS)


def test_the_docs_are_the_readme_and_every_guide():
    names = {p.relative_to(ROOT).as_posix() for p in DOCS}
    assert "README.md" in names
    for guide in ("agents", "reviewers", "auditors", "operators", "benchmarks", "architecture"):
        assert f"docs/{guide}.md" in names


def test_every_relative_link_and_anchor_resolves():
    assert cd.broken_links(DOCS) == []


def test_a_broken_link_is_reported_with_its_file_and_line(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Second part\n")
    (tmp_path / "guide.md").write_text(
        "# Guide\n"
        "[fine](other.md) and [anchored](other.md#second-part) and [here](#guide)\n"
        "[gone](missing.md)\n"
        "```\n"
        "[ignored inside code](nowhere.md)\n"
        "```\n"
        "[bad anchor](other.md#third-part) `[in a code span](nowhere.md)`\n"
        "![image](pics/none.png) [web](https://example.com/x.md)\n"
    )
    found = cd.broken_links([tmp_path / "guide.md"])
    where = [f.split(": ", 1)[0].rsplit("/", 1)[-1] for f in found]
    assert where == ["guide.md:3", "guide.md:7", "guide.md:8"]
    assert "missing.md: no such file" in found[0]
    assert "no heading #third-part" in found[1]
    assert "pics/none.png: no such file" in found[2]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Reviews: the human in the loop", "reviews-the-human-in-the-loop"),
        ("Checking a deployment: `signoff doctor`", "checking-a-deployment-signoff-doctor"),
        ("Reviewer fatigue: 1,000 refunds, a report", "reviewer-fatigue-1000-refunds-a-report"),
        ("core/: pure semantics", "core-pure-semantics"),
        ("7. Bounded cost per caller", "7-bounded-cost-per-caller"),
    ],
)
def test_anchors_are_githubs_slugs(heading, anchor):
    assert cd.slug(heading) == anchor


def test_repeated_headings_get_numbered_anchors(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A\n## Notes\n```\n# not a heading\n```\n## Notes\n")
    assert cd.anchors(page) == {"a", "notes", "notes-1"}


def test_only_blocks_right_after_the_marker_are_runnable(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "<!-- runnable -->\n```sh\necho one\n```\n\n"
        "```sh\necho not marked\n```\n"
        "````markdown\n<!-- runnable -->\n```sh\necho an example of the marker\n```\n````\n"
    )
    assert [(b.line, b.text) for b in cd.runnable_blocks([page])] == [(2, "echo one")]


def test_a_failing_runnable_block_is_reported_with_its_file_and_line(tmp_path, capsys):
    page = tmp_path / "p.md"
    page.write_text("# P\n\n<!-- runnable -->\n```sh\ntrue\nfalse\n```\n")
    assert cd.main([str(page), "--run"]) == 1
    assert f"{page}:4: runnable block exited 1" in capsys.readouterr().err


def test_there_are_runnable_blocks_in_the_readme_and_the_guides():
    where = {b.path.name for b in BLOCKS}
    assert {"README.md", "policies.md", "architecture.md"} <= where
    assert any("examples/tour.py" in b.text for b in BLOCKS)


@pytest.mark.parametrize(
    "block", BLOCKS, ids=[f"{b.path.relative_to(ROOT)}:{b.line}" for b in BLOCKS]
)
def test_every_runnable_block_runs(block):
    done = cd.run_block(block)
    assert done.returncode == 0, f"{block.text}\n{done.stdout}{done.stderr}"


def test_the_readme_starts_with_make_run_and_make_test_and_stays_short():
    text = (ROOT / "README.md").read_text()
    first = re.search(r"^```sh\n(.*?)^```", text, re.M | re.S)
    assert first is not None
    commands = [line.split("#")[0].strip() for line in first[1].splitlines()]
    assert [c for c in commands if c][:2] == ["make run", "make test"]
    assert len(text.splitlines()) <= 300


def test_no_issue_numbers_and_no_links_outside_the_repository():
    for path in DOCS:
        text = path.read_text()
        assert not re.search(r"\b[Ii]ssues? \d+", text), path
        assert "../shared" not in text, path
        assert not re.search(r"\b(SPEC|STYLE)\.md\b", text), path


def test_the_bench_table_lives_between_the_markers_of_the_benchmarks_guide():
    guide = (ROOT / "docs" / "benchmarks.md").read_text()
    assert guide.count("<!-- bench:start -->\n") == 1
    assert guide.count("<!-- bench:end -->") == 1
    assert "<!-- bench:" not in (ROOT / "README.md").read_text()
    assert bench_run.GUIDE == ROOT / "docs" / "benchmarks.md"


def test_the_bench_table_is_written_between_the_markers_and_nowhere_else(tmp_path):
    guide = tmp_path / "benchmarks.md"
    guide.write_text("# B\nbefore\n<!-- bench:start -->\nold\n<!-- bench:end -->\nafter\n")
    bench_run.quote_in_guide("new\n", guide)
    assert guide.read_text() == (
        "# B\nbefore\n<!-- bench:start -->\nnew\n<!-- bench:end -->\nafter\n"
    )
    guide.write_text("# B\nno markers\n")
    with pytest.raises(SystemExit, match="markers"):
        bench_run.quote_in_guide("new\n", guide)
    assert guide.read_text() == "# B\nno markers\n"
