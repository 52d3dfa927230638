"""`signoff doctor`: check a configuration (settings, policies, database, keys, ports, clock)
without starting the server, and print what is wrong."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from typing import Any

from signoff.cli.config_cmd import add_serve_flags, flags_from
from signoff.cli.output import table

MARKS = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}


def add_parser(sub: Any) -> None:
    """Register `signoff doctor` (it takes every flag of `signoff serve`)."""
    doctor = sub.add_parser(
        "doctor",
        help="check config, database, policies, keys, ports and clock; change nothing",
    )
    add_serve_flags(doctor, sub.choices["serve"])
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")


def run(args: argparse.Namespace) -> int:
    """Entry point of `signoff doctor`: exit 1 when any check fails."""
    from signoff.config import ConfigError, load_settings
    from signoff.doctor import Check, run_checks

    source = f"flags, environment and {args.config}" if args.config else "flags and environment"
    try:
        settings = load_settings(flags_from(args), args.config)
    except ConfigError as exc:
        checks = [Check("config", "fail", str(exc))]
    else:
        checks = [Check("config", "ok", f"loaded from {source}")]
        checks += asyncio.run(run_checks(settings))
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        rows = [(c.check, MARKS[c.status], c.detail) for c in checks]
        print(table(("check", "status", "detail"), rows))
        verdict = f"{failed} failed" if failed else "no failures"
        print(f"\n{verdict}, {warned} warning(s)")
    return 1 if failed else 0
