"""Check the README and docs/: every relative link resolves, every runnable block runs.

Usage: python scripts/check_docs.py [--run] [FILE.md ...]

Without files it checks README.md and docs/*.md. A link is `[text](target)` or
`![alt](target)` outside code; a relative target must be an existing file or directory, and
its `#anchor`, when the target is a Markdown file (or the same file), a heading there (GitHub's
slugs). A fenced block is runnable when the line before its opening fence is exactly
`<!-- runnable -->`: with `--run`, it runs with bash (`set -e`) in the repository root, the
running Python's directory first on PATH, and must exit 0.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = "<!-- runnable -->"
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Block:
    """A fenced code block marked runnable: where it is and what it says."""

    path: Path
    line: int  # of the opening fence, 1-based
    info: str
    text: str


def default_files(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown file directly under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _walk(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str, str, str]]]:
    """Split Markdown into prose lines (number, line) and fenced blocks (number of the
    opening fence, its info string, the line before it, the block's text)."""
    lines = text.splitlines()
    prose: list[tuple[int, str]] = []
    blocks: list[tuple[int, str, str, str]] = []
    fence, start, info, body = "", 0, "", []
    for n, line in enumerate(lines, 1):
        m = _FENCE.match(line)
        if fence:
            if m and m[2][0] == fence[0] and len(m[2]) >= len(fence) and not m[3].strip():
                before = lines[start - 2].strip() if start > 1 else ""
                blocks.append((start, info, before, "\n".join(body)))
                fence = ""
            else:
                body.append(line)
            continue
        if m:
            fence, start, info, body = m[2], n, m[3].strip(), []
            continue
        prose.append((n, line))
    return prose, blocks


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """The (1-based number, line) pairs outside fenced code blocks."""
    return _walk(text)[0]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, duplicates numbered as GitHub does."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in _prose_lines(path.read_text()):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m[2])
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(paths: list[Path]) -> list[str]:
    """`file:line: target: what is wrong` for every link that does not resolve."""
    problems = []
    cache: dict[Path, set[str]] = {}
    for path in paths:
        for n, line in _prose_lines(path.read_text()):
            for target in _LINK.findall(_CODE_SPAN.sub("", line)):
                why = _check(path, target, cache)
                if why:
                    problems.append(f"{_show(path)}:{n}: {target}: {why}")
    return problems


def _check(path: Path, target: str, cache: dict[Path, set[str]]) -> str | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
        return None
    file_part, _, anchor = target.partition("#")
    dest = (path.parent / file_part).resolve() if file_part else path
    if not dest.exists():
        return "no such file"
    if anchor and dest.suffix == ".md":
        if dest not in cache:
            cache[dest] = anchors(dest)
        if anchor not in cache[dest]:
            return f"no heading #{anchor} in {_show(dest)}"
    return None


def runnable_blocks(paths: list[Path]) -> list[Block]:
    """The fenced blocks whose opening fence follows a `<!-- runnable -->` line (in prose:
    a marker shown inside another code block is an example, not a marker)."""
    return [
        Block(path, line, info, text)
        for path in paths
        for line, info, before, text in _walk(path.read_text())[1]
        if before == RUNNABLE
    ]


def run_block(block: Block, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one block with bash in the repository root, this Python's bin first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.text],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    """Print what is broken; exit 1 if anything is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--run", action="store_true", help="also run the runnable blocks")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.files] or default_files()
    problems = broken_links(paths)
    if args.run:
        for block in runnable_blocks(paths):
            done = run_block(block)
            if done.returncode != 0:
                problems.append(
                    f"{_show(block.path)}:{block.line}: runnable block exited "
                    f"{done.returncode}\n{done.stdout}{done.stderr}"
                )
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
