"""The flags of `signoff serve`, in one place: the CLI's parser, `signoff config` and
`signoff doctor` all read them from here (each `signoff serve` flag sets one setting)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_serve_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the `serve` subcommand to the subparsers `sub`; return its parser."""
    what = "run the service: the gRPC API, and the reviewer console and Connect API over HTTP"
    serve = sub.add_parser("serve", help=what, description=f"{what[0].upper()}{what[1:]}.")
    serve.add_argument("--policies", type=Path, help="policy directory (default ./policies)")
    serve.add_argument("--db", help="database URL (default sqlite:///./signoff.db)")
    serve.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:50051)")
    serve.add_argument(
        "--http-listen",
        help="HOST:PORT of the reviewer console and the Connect API (default 127.0.0.1:8080; "
        "'' for none)",
    )
    serve.add_argument("--workers", type=int, help="server processes sharing the ports (default 1)")
    serve.add_argument("--config", type=Path, help="YAML config file")
    serve.add_argument("--log-format", choices=["text", "json"], help="log line format")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    return serve


def serve_parser() -> argparse.ArgumentParser:
    """A stand-alone parser of `signoff serve`'s flags."""
    return add_serve_parser(argparse.ArgumentParser(prog="signoff").add_subparsers())
