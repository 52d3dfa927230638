"""Generate the Python and TypeScript protobuf/gRPC code from proto/ into the clients.

Usage: python scripts/gen_proto.py [--check]

The generated modules live once, in `signoff_client._gen`, and the server imports them
from there: two copies of the same .proto registered under different module names would
collide in protobuf's default descriptor pool when client and server share a process.
The TypeScript code (messages and Connect service descriptors) comes from the same protoc,
run with Buf's protoc-gen-es from `clients/node_modules` (`npm ci` in clients/ first).
`--check` regenerates into a temporary directory and fails if the committed files differ.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "clients" / "python" / "signoff_client" / "_gen"
TS_DIR = ROOT / "clients" / "typescript"
TS_OUT_DIR = TS_DIR / "src" / "gen"
TS_PLUGIN = ROOT / "clients" / "node_modules" / ".bin" / "protoc-gen-es"
IMPORT_RE = re.compile(r"^from signoff\.v1 import (\w+) as", re.MULTILINE)


def _protoc(*outputs: str) -> None:
    from grpc_tools import protoc  # imported here: only generation needs grpcio-tools

    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    if protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{include}", *outputs, *protos]) != 0:
        sys.exit("protoc failed")


def generate_ts(out: Path) -> None:
    """Write the TypeScript messages and service descriptors into `out`."""
    if not TS_PLUGIN.exists():
        sys.exit(f"{TS_PLUGIN.relative_to(ROOT)} is missing: run `npm ci` in clients/")
    out.mkdir(parents=True, exist_ok=True)
    _protoc(
        f"--plugin=protoc-gen-es={TS_PLUGIN}",
        f"--es_out={out}",
        "--es_opt=target=ts,import_extension=js",
    )


def generate(out: Path) -> None:
    """Run protoc over every .proto file and write rewritten modules into `out`."""
    with tempfile.TemporaryDirectory() as tmp:
        _protoc(f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}")
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted((Path(tmp) / "signoff" / "v1").iterdir()):
            text = IMPORT_RE.sub(r"from signoff_client._gen import \1 as", f.read_text())
            (out / f.name).write_text(text)
    (out / "__init__.py").write_text('"""Generated protobuf and gRPC code; do not edit."""\n')


def main() -> int:
    """Generate, or with --check verify that the committed code is fresh."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    args = parser.parse_args()
    targets = ((generate, OUT_DIR), (generate_ts, TS_OUT_DIR))
    if not args.check:
        for gen, out in targets:
            shutil.rmtree(out, ignore_errors=True)
            gen(out)
            print(f"generated {out.relative_to(ROOT)}")
        return 0
    stale: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for gen, out in targets:
            fresh = Path(tmp) / out.name
            gen(fresh)
            stale += [str(out.relative_to(ROOT) / f) for f in _differences(fresh, out)]
    if stale:
        print(f"generated code is stale: {', '.join(sorted(stale))}", file=sys.stderr)
        print("run: python scripts/gen_proto.py", file=sys.stderr)
        return 1
    print("generated code is fresh")
    return 0


def _differences(fresh: Path, committed: Path) -> list[str]:
    cmp = filecmp.dircmp(fresh, committed, ignore=["__pycache__"])
    found = cmp.diff_files + cmp.left_only + cmp.right_only
    for name, sub in cmp.subdirs.items():
        found += [f"{name}/{f}" for f in _differences(Path(sub.left), Path(sub.right))]
    return found


if __name__ == "__main__":
    sys.exit(main())
