"""Generate the Python protobuf/gRPC code from proto/ into the client package.

Usage: python scripts/gen_proto.py [--check]

The generated modules live once, in `signoff_client._gen`, and the server imports them
from there: two copies of the same .proto registered under different module names would
collide in protobuf's default descriptor pool when client and server share a process.
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
IMPORT_RE = re.compile(r"^from signoff\.v1 import (\w+) as", re.MULTILINE)


def generate(out: Path) -> None:
    """Run protoc over every .proto file and write rewritten modules into `out`."""
    from grpc_tools import protoc  # imported here: only generation needs grpcio-tools

    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        include = Path(protoc.__file__).parent / "_proto"
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            sys.exit("protoc failed")
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
    if not args.check:
        shutil.rmtree(OUT_DIR, ignore_errors=True)
        generate(OUT_DIR)
        print(f"generated {OUT_DIR.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "_gen"
        generate(fresh)
        cmp = filecmp.dircmp(fresh, OUT_DIR, ignore=["__pycache__"])
        stale = cmp.diff_files + cmp.left_only + cmp.right_only
        if stale:
            print(f"generated code is stale: {', '.join(sorted(stale))}", file=sys.stderr)
            print("run: python scripts/gen_proto.py", file=sys.stderr)
            return 1
    print("generated code is fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
