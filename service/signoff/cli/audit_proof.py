"""`signoff audit proof`: check, with the client alone, that an entry is in the signed log,
or that the log a checkpoint signed is a prefix of the newest signed log.

    signoff audit proof SEQ [--size N] --public-key KEY.pem
    signoff audit proof --since N --public-key KEY.pem

The tree head comes from a version 2 checkpoint (GetCheckpoints) whose signature is checked
with the given public key (kept outside the server: without one, the server's own key is
used, and the output says so); the proof (GetInclusionProof, GetConsistencyProof) is checked
against that signed root by `signoff_client.audit_proofs`. Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
from typing import Any

from signoff.cli.remote import EXIT_REFUSED, EXIT_USAGE, CliError
from signoff_client._gen import audit_pb2 as A


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `audit proof`."""
    p.add_argument("seq", nargs="?", type=int, help="the entry to prove")
    p.add_argument(
        "--size", type=int, default=0, help="the signed log size (default the newest signed)"
    )
    p.add_argument(
        "--since",
        type=int,
        default=0,
        help="prove instead that the log signed at this size is a prefix of the newest",
    )
    p.add_argument("--public-key", help="the server's PEM public key, kept outside the server")


def run(client: Any, args: argparse.Namespace) -> int:
    """Fetch the signed heads and the proof, verify them here, print what was proven."""
    from signoff_client import audit_proofs

    if (args.seq is None) == (not args.since):
        raise CliError("give either SEQ or --since SIZE", EXIT_USAGE)
    resp = client.call("GetCheckpoints", A.GetCheckpointsRequest(limit=10_000))
    key, trust = _key(args.public_key, resp.public_key_pem)
    heads = [c for c in resp.checkpoints if c.root_hash]
    if not heads:
        raise CliError("no checkpoint signs a tree head yet")
    newest = heads[-1]
    try:
        if args.since:
            older = _at(heads, args.since)
            for cp in (older, newest):
                audit_proofs.verify_checkpoint(cp, key)
            req = A.GetConsistencyProofRequest(first=older.tree_size, second=newest.tree_size)
            proof = client.call("GetConsistencyProof", req)
            audit_proofs.verify_consistency(proof, older, newest)
            print(
                f"ok: the log of {older.tree_size} entries signed at {_time(older)} is a prefix "
                f"of the log of {newest.tree_size} signed at {_time(newest)} "
                f"({len(proof.proof)} hashes){trust}"
            )
            return 0
        head = _at(heads, args.size) if args.size else newest
        audit_proofs.verify_checkpoint(head, key)
        req = A.GetInclusionProofRequest(seq=args.seq, tree_size=head.tree_size)
        proof = client.call("GetInclusionProof", req)
        fields = audit_proofs.verify_inclusion(proof, head)
    except audit_proofs.ProofError as exc:
        print(f"FAILED: {exc}")
        return EXIT_REFUSED
    print(
        f"ok: entry {args.seq} ({fields.get('type', '')}, hash {fields['hash'][:16]}...) is in "
        f"the log of {head.tree_size} entries signed at {_time(head)} "
        f"({len(proof.proof)} hashes){trust}"
    )
    return 0


def _key(path: str | None, served: str) -> tuple[Any, str]:
    if path is None:
        if not served:
            raise CliError("the server has no signing key, and no --public-key was given")
        return served, " -- with the server's own key: pass --public-key to trust none of it"
    try:
        with open(path, "rb") as f:
            return f.read(), ""
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}", EXIT_USAGE) from None


def _at(heads: list[A.Checkpoint], size: int) -> A.Checkpoint:
    for cp in heads:
        if cp.tree_size == size:
            return cp
    sizes = ", ".join(str(c.tree_size) for c in heads[-5:])
    raise CliError(f"no checkpoint signs a tree of {size} entries (newest: {sizes})", EXIT_USAGE)


def _time(cp: A.Checkpoint) -> str:
    return cp.time.ToJsonString()
