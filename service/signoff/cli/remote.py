"""What every command that talks to a server shares: where it is, the token, one error
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


class Remote:
    """One channel to the server named by --server / SIGNOFF_SERVER, with the caller's token."""

    def __init__(self, target: str, token: str, timeout: float | None) -> None:
        self.target = target
        self.timeout = timeout
        self.channel = grpc.insecure_channel(target)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Remote:
        """Flags first, then SIGNOFF_SERVER / SIGNOFF_TOKEN, then the defaults."""
        target = args.server or os.environ.get("SIGNOFF_SERVER") or DEFAULT_SERVER
        token = args.token if args.token is not None else os.environ.get("SIGNOFF_TOKEN", "")
        return cls(target, token, args.timeout)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()


def rpc_failure(exc: grpc.RpcError, remote: Remote) -> tuple[str, int]:
    """A gRPC error as one line for the user and its exit code."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the server at {remote.target} ({details})", EXIT_UNAVAILABLE
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


def run_command(remote: Remote, command: Callable[[], int]) -> int:
    """Run a command against `remote`, turning every failure into one line and an exit code."""
    try:
        return command()
    except CliError as exc:
        print(f"signoff: {exc.message}", file=sys.stderr)
        return exc.code
    except grpc.RpcError as exc:
        message, code = rpc_failure(exc, remote)
        print(f"signoff: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130
    finally:
        remote.close()
