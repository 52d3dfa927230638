"""Build the reviewer console (clients/console) into service/signoff/console/static/.

Usage: python scripts/build_console.py [--check]

The built files are committed, so that `pip install` + `signoff serve` serve the console
without Node. The build type-checks the TypeScript, then runs Vite into a temporary
directory; the output must be exactly index.html plus content-hashed files under assets/.
Without --check the static directory is emptied and replaced by the new build.
`--check` builds into a temporary directory only and fails, listing the files, if the
committed build differs (a source change without a rebuild, or a hand-edited build).
Needs `npm ci` in clients/ first.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ROOT / "clients"
CONSOLE = CLIENTS / "console"
STATIC = ROOT / "service" / "signoff" / "console" / "static"
HASHED = re.compile(r"^assets/[\w.-]+-[\w-]{8,}\.(js|css)$")


def build(out: Path) -> None:
    """Type-check and build the console into the empty directory `out`."""
    if not (CLIENTS / "node_modules" / ".bin" / "vite").exists():
        sys.exit("clients/node_modules is missing: run `npm ci` in clients/ first")
    bins = CLIENTS / "node_modules" / ".bin"
    steps = [
        [str(bins / "tsc"), "-p", "tsconfig.json", "--noEmit"],
        [str(bins / "vite"), "build", "--outDir", str(out), "--emptyOutDir", "--logLevel", "warn"],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, cwd=CONSOLE, check=False)
        if done.returncode != 0:
            sys.exit(f"console build failed at {Path(cmd[0]).name} (exit {done.returncode})")
    unexpected = [f for f in files(out) if f != "index.html" and not HASHED.match(f)]
    if unexpected or "index.html" not in files(out):
        sys.exit(f"unexpected build output (want index.html + hashed assets/): {unexpected}")


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` by its relative POSIX path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def report(tree: dict[str, bytes]) -> None:
    """Print each file's size, raw and gzipped, and the total."""
    total = total_gz = 0
    for name, data in tree.items():
        gz = len(gzip.compress(data, 9, mtime=0))
        total, total_gz = total + len(data), total_gz + gz
        print(f"  {name:<40} {len(data) / 1024:7.1f} KiB  gzip {gz / 1024:6.1f} KiB")
    print(f"  {'total':<40} {total / 1024:7.1f} KiB  gzip {total_gz / 1024:6.1f} KiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed build differs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "static"
        build(out)
        built = files(out)
        if args.check:
            committed = files(STATIC) if STATIC.is_dir() else {}
            differ = sorted(
                name
                for name in built.keys() | committed.keys()
                if built.get(name) != committed.get(name)
            )
            if differ:
                rel = STATIC.relative_to(ROOT)
                print(f"{rel} is not the build of clients/console; differing files:")
                for name in differ:
                    state = (
                        "missing"
                        if name not in committed
                        else "stale"
                        if name not in built
                        else "changed"
                    )
                    print(f"  {state:<8} {rel / name}")
                print("run: python scripts/build_console.py")
                return 1
            print(f"console build is up to date ({len(built)} files)")
            return 0
        if STATIC.exists():
            shutil.rmtree(STATIC)
        shutil.copytree(out, STATIC)
    print(f"built the console into {STATIC.relative_to(ROOT)}:")
    report(built)
    return 0


if __name__ == "__main__":
    sys.exit(main())
