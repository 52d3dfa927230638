"""The layers of service/signoff/ import only downwards (docs/architecture.md).

Walks every module's imports with `ast` (function-level and TYPE_CHECKING imports included:
a lazy import is still a dependency) and fails on an edge against the arrows, and on an
import cycle between modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "service" / "signoff"

# Bottom to top. A module may import its own layer's modules and any lower layer's. The root
# modules (errors, ids, logs, yamlpos, pb, net) are the foundation under everything.
LAYERS: list[set[str]] = [
    {"errors", "ids", "logs", "yamlpos", "pb", "net", "__init__"},
    {"policy", "auth"},
    {"limits"},
    {"core"},
    {"store", "notify"},
    {"telemetry", "export", "policytest", "analysis"},
    {"settings"},
    {"app"},
    {"api", "mcp_proxy"},
    {"serving", "console"},
    {"cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """The dotted module name of a file under the package (without the `signoff.` prefix)."""
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) of every `signoff` module the file imports, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    known = {module_name(p, root) for p in root.rglob("*.py")}
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name[8:]) for a in node.names if a.name.startswith("signoff.")]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module == "signoff":
                out += [(node.lineno, a.name) for a in node.names]
            elif node.module.startswith("signoff."):
                base = node.module[8:]
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    out.append((node.lineno, sub if sub in known else base))
    return out


def layer_of(module: str) -> str:
    """The layer a module belongs to: its first dotted component."""
    return module.split(".")[0]


def violations(root: Path = PACKAGE) -> list[str]:
    """Every import against the arrows, as `file:line: a -> b`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        here = layer_of(module_name(path, root))
        for line, target in imports_of(path, root):
            there = layer_of(target)
            if there != here and RANK.get(there, -1) > RANK.get(here, -1):
                rel = path.relative_to(root.parent)
                found.append(f"{rel}:{line}: {here} -> {there} ({target})")
    return found


def cycles(root: Path = PACKAGE) -> list[list[str]]:
    """Import cycles between modules, counting imports inside functions too: a lazy import
    that closes a loop hides a cycle rather than removing it."""
    graph = {module_name(p, root): {m for _, m in imports_of(p, root)} for p in root.rglob("*.py")}
    for name in graph:  # `from signoff.x import y` loads x's __init__: not a design edge
        graph[name] = {d for d in graph[name] if not name.startswith(f"{d}.")}
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                found.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_every_package_has_a_layer() -> None:
    tops = {layer_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert tops - set(RANK) == set(), "add the new package to LAYERS and docs/architecture.md"


def test_imports_go_only_downwards() -> None:
    assert violations() == []


def test_no_import_cycles_between_modules() -> None:
    assert cycles() == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"core/a.py": "from signoff.store import b\n", "store/b.py": ""}, ["core -> store"]),
        ({"store/b.py": "from signoff.core import a\n", "core/a.py": ""}, []),
        (
            {"core/a.py": "def f():\n    from signoff.app.x import y\n", "app/x.py": ""},
            ["core -> app"],
        ),
    ],
)
def test_an_upward_import_is_reported(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    root = tmp_path / "signoff"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    found = violations(root)
    assert [f.split(": ", 1)[1].split(" (")[0] for f in found] == expected


def test_a_cycle_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "signoff"
    (root / "core").mkdir(parents=True)
    (root / "core" / "a.py").write_text("from signoff.core.b import x\n")
    (root / "core" / "b.py").write_text("from signoff.core.a import y\n")
    assert cycles(root) == [["core.a", "core.b", "core.a"]]
