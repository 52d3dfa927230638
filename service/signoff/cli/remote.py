"""What every command that talks to a server shares: where it is, the token, TLS, one error
line per gRPC failure, and the exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import grpc

DEFAULT_SERVER = "127.0.0.1:50051"
EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 2, 3


class CliError(Exception):
    """A failure already phrased for the user, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# Flag, environment variable, and what it is: the TLS options of every remote command.
TLS_OPTIONS = (
    ("ca", "SIGNOFF_CA", "CA certificate (PEM) to trust (turns TLS on)"),
    ("cert", "SIGNOFF_CLIENT_CERT", "client certificate (PEM) for mTLS"),
    ("key", "SIGNOFF_CLIENT_KEY", "private key (PEM) of --cert"),
)


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """--ca, --cert, --key (default $SIGNOFF_CA, $SIGNOFF_CLIENT_CERT, $SIGNOFF_CLIENT_KEY)."""
    for name, env, text in TLS_OPTIONS:
        parser.add_argument(f"--{name}", help=f"{text} (default ${env})")


def add_connection_arguments(
    parser: argparse.ArgumentParser,
    *,
    token_help: str = "bearer token (default $SIGNOFF_TOKEN)",
    timeout: float | None = 10.0,
    timeout_help: str = "seconds per call (default 10)",
) -> None:
    """--server, --token, the TLS files and --timeout: how a command reaches the server."""
    parser.add_argument(
        "--server", help=f"HOST:PORT of the server (default $SIGNOFF_SERVER or {DEFAULT_SERVER})"
    )
    parser.add_argument("--token", help=token_help)
    add_tls_arguments(parser)
    parser.add_argument("--timeout", type=float, default=timeout, help=timeout_help)


def tls_from_args(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """Channel credentials from --ca/--cert/--key or their variables; None: plaintext.

    --cert without --ca trusts the system's CAs, as for a server with a public certificate.
    """
    from signoff_client import tls_credentials

    given = {
        name: getattr(args, name, None) or os.environ.get(env) or None
        for name, env, _ in TLS_OPTIONS
    }
    if not any(given.values()):
        return None
    try:
        return tls_credentials(given["ca"], given["cert"], given["key"])
    except ValueError as exc:
        raise CliError(f"TLS: {exc} (--ca, --cert, --key)", EXIT_USAGE) from None


class Remote:
    """One channel to the server named by --server / SIGNOFF_SERVER, with the caller's token;
    TLS when given a CA (--ca / SIGNOFF_CA) and for mTLS a client certificate."""

    def __init__(
        self,
        target: str,
        token: str,
        timeout: float | None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.tls = credentials is not None
        if credentials is None:
            self.channel = grpc.insecure_channel(target)
        else:
            self.channel = grpc.secure_channel(target, credentials)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Remote:
        """Flags first, then SIGNOFF_SERVER / SIGNOFF_TOKEN / SIGNOFF_CA..., then defaults."""
        target = args.server or os.environ.get("SIGNOFF_SERVER") or DEFAULT_SERVER
        token = args.token if args.token is not None else os.environ.get("SIGNOFF_TOKEN", "")
        return cls(target, token, args.timeout, tls_from_args(args))

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()


def rpc_failure(exc: grpc.RpcError, remote: Remote) -> tuple[str, int]:
    """A gRPC error as one line for the user and its exit code."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    if code == grpc.StatusCode.UNAVAILABLE:
        hint = _tls_hint(details, remote)
        return f"cannot reach the server at {remote.target} ({details}){hint}", EXIT_UNAVAILABLE
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        within = f"within {remote.timeout:g}s" if remote.timeout else "in time (--timeout)"
        return f"no answer from {remote.target} {within}", EXIT_UNAVAILABLE
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return f"invalid argument: {details}", EXIT_USAGE
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"not authenticated: {details}; pass --token or set SIGNOFF_TOKEN", EXIT_REFUSED
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return f"permission denied: {details}", EXIT_REFUSED
    return details, EXIT_REFUSED


def report(exc: CliError) -> int:
    """Print a CliError as one line on stderr; its exit code."""
    print(f"signoff: {exc.message}", file=sys.stderr)
    return exc.code


def run_command(remote: Remote, command: Callable[[], int]) -> int:
    """Run a command against `remote`, turning every failure into one line and an exit code."""
    try:
        return command()
    except CliError as exc:
        return report(exc)
    except grpc.RpcError as exc:
        message, code = rpc_failure(exc, remote)
        print(f"signoff: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130
    finally:
        remote.close()


def _tls_hint(details: str, remote: Remote) -> str:
    lowered = details.lower()
    if "handshake" in lowered or "certificate" in lowered:
        return "; TLS failed: check --ca (the server's CA) and, for mTLS, --cert and --key"
    if "socket closed" in lowered or "connection reset" in lowered:
        if remote.tls:
            return "; the server may require a client certificate it trusts: check --cert, --key"
        return "; if the server serves TLS, pass --ca (or set SIGNOFF_CA)"
    return ""
