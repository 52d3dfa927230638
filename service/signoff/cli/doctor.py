"""`signoff doctor`: check a configuration (settings, policies, database, keys, ports, clock)
without starting the server, and print what is wrong; `signoff health`: the container probe."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
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
    from signoff.serving.doctor import Check, run_checks
    from signoff.settings.model import ConfigError, load_settings

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


def add_health_parser(sub: Any) -> None:
    """Register `signoff health`, the probe the image's HEALTHCHECK runs."""
    health = sub.add_parser(
        "health", help="exit 0 if the local server reports SERVING (for container probes)"
    )
    health.add_argument(
        "--target",
        help="HOST:PORT to ask (default: the `listen` setting, a wildcard host as loopback)",
    )
    health.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    from signoff.cli.remote import add_tls_arguments

    add_tls_arguments(health)  # a TLS port: --ca, and for mTLS --cert and --key


def run_health(args: argparse.Namespace) -> int:
    """Ask grpc.health.v1 on the gRPC port; print one line; exit 0 only when SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from signoff.settings.model import ConfigError, load_settings

    target = args.target
    if target is None:
        try:
            listen = load_settings().listen
        except ConfigError as exc:
            print(f"signoff: config error: {exc}", file=sys.stderr)
            return 2
        host, _, port = listen.rpartition(":")
        # The server listens on every address; the probe runs beside it.
        host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}.get(host, host)
        target = f"{host}:{port}"
    from signoff.cli.remote import CliError, report, tls_from_args

    try:
        credentials = tls_from_args(args)
    except CliError as exc:
        return report(exc)
    try:
        with (
            grpc.secure_channel(target, credentials)
            if credentials
            else grpc.insecure_channel(target)
        ) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        print(f"{target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{target}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
