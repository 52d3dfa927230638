"""`signoff audit receipt`: upgrade a receipt with the proof that the log records its allow,
or check such a proof offline.

    signoff audit receipt RECEIPT -o PROOF [--min-cosignatures K | --unwitnessed]
    signoff audit receipt --check PROOF --public-key log.pub --witness-key a.pub \
        --witness-key b.pub --quorum 2 [--action action.json]

RECEIPT is the receipt as the agent holds it: a serialized `Receipt`, or its protobuf JSON.
The first form asks the server (GetReceiptProof), checks the answer here and writes it
(a serialized `ReceiptProof`); the second needs no server: it is what a third party runs.
Both check with `signoff_client.receipt_proofs.verify`; exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from signoff.cli.remote import EXIT_REFUSED, EXIT_USAGE, CliError
from signoff_client._gen import audit_pb2 as A
from signoff_client._gen import common_pb2

M = TypeVar("M", bound=Message)
MAX_FILE = 1 << 20  # a receipt or a proof is a few kB; anything this large is not one


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `audit receipt`."""
    p.add_argument("receipt", nargs="?", type=Path, help="the receipt to upgrade (bytes or JSON)")
    p.add_argument("-o", "--output", type=Path, help="where to write the proof")
    p.add_argument("--check", type=Path, metavar="PROOF", help="check a proof offline instead")
    p.add_argument("--tree-size", type=int, default=0, help="prove into this checkpoint")
    p.add_argument(
        "--min-cosignatures", type=int, default=0, help="co-signatures the checkpoint needs (1)"
    )
    p.add_argument(
        "--unwitnessed", action="store_true", help="accept a checkpoint no witness co-signed"
    )
    p.add_argument("--public-key", type=Path, help="the server's PEM public key, kept outside it")
    p.add_argument(
        "--witness-key", type=Path, action="append", default=[], help="a witness's PEM key"
    )
    p.add_argument("--quorum", type=int, help="co-signatures required (default: every key)")
    p.add_argument(
        "--action", type=Path, help="JSON of the action the receipt must allow, as evaluated"
    )


def run(client: Any, args: argparse.Namespace) -> int:
    """Fetch (or read) the proof, verify it here, print what it shows."""
    if (args.receipt is None) == (args.check is None):
        raise CliError("give either RECEIPT (to upgrade) or --check PROOF", EXIT_USAGE)
    if args.receipt is not None and args.output is None:
        raise CliError("-o/--output: where to write the proof", EXIT_USAGE)
    if args.check is not None:
        proof = _message(args.check, A.ReceiptProof())
        if args.public_key is None:
            raise CliError("--check needs --public-key: the server's key, kept outside it")
        key, trust = _read(args.public_key), ""
    else:
        receipt = _message(args.receipt, common_pb2.Receipt())
        req = A.GetReceiptProofRequest(
            receipt=receipt,
            tree_size=args.tree_size,
            min_cosignatures=args.min_cosignatures,
            unwitnessed=args.unwitnessed,
        )
        proof = client.call("GetReceiptProof", req)
        if args.public_key is not None:
            key, trust = _read(args.public_key), ""
        else:
            served = client.call("GetCheckpoints", A.GetCheckpointsRequest(limit=1))
            key = served.public_key_pem
            trust = " -- with the server's own key: pass --public-key to trust none of it"
    code = _verify(proof, key, args, trust)
    if code == 0 and args.output is not None:
        args.output.write_bytes(proof.SerializeToString())
    return code


def _verify(proof: A.ReceiptProof, key: Any, args: argparse.Namespace, trust: str) -> int:
    from signoff_client import receipt_proofs, receipts

    witnesses = [_read(p) for p in args.witness_key]
    quorum = len(witnesses) if args.quorum is None else args.quorum
    if args.unwitnessed and args.quorum is None:
        quorum = 0
    action = _action(args.action) if args.action is not None else None
    try:
        logged = receipt_proofs.verify(
            proof, key, witness_keys=witnesses, quorum=quorum, action=action
        )
    except (receipt_proofs.ProofError, receipts.ReceiptError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    stated = logged.receipt
    if args.json:
        print(json.dumps({
            "ok": True,
            "decision_id": stated.decision_id,
            "review_id": stated.review_id,
            "outcome": stated.outcome,
            "action_digest": stated.action_digest,
            "seq": logged.seq,
            "entry_type": logged.entry.get("type", ""),
            "tree_size": logged.tree_size,
            "root_hash": logged.root_hash,
            "witnesses": list(logged.witnesses),
            "checkpoint_key_only": bool(trust),
        }, indent=2))  # fmt: skip
        return 0
    what = f"review {stated.review_id}" if stated.review_id else f"decision {stated.decision_id}"
    vouched = (
        f"co-signed by {len(logged.witnesses)} witness(es) ({', '.join(logged.witnesses)})"
        if logged.witnesses
        else "co-signed by no witness (the server's key alone vouches)"
    )
    print(
        f"ok: the {stated.outcome} of {what} is entry {logged.seq} "
        f"({logged.entry.get('type', '')}) of the log of {logged.tree_size} entries, "
        f"{vouched}{trust}"
    )
    return 0


def _message(path: Path, into: M) -> M:
    """`path` as a serialized message, or as its protobuf JSON."""
    data = _read(path)
    try:
        if data.lstrip().startswith(b"{"):
            json_format.Parse(data, into)
        else:
            into.ParseFromString(data)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        name = into.DESCRIPTOR.name
        raise CliError(f"{path}: not a {name} (serialized or JSON): {exc}", EXIT_USAGE) from None
    return into


def _action(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(_read(path))
    except ValueError as exc:
        raise CliError(f"{path}: not JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("action"), str):
        raise CliError(
            f'{path}: expected {{"action": NAME, "params": {{...}}, "principal": ...}}', EXIT_USAGE
        )
    return doc


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if len(data) > MAX_FILE:
        raise CliError(f"{path}: larger than {MAX_FILE} bytes: not a receipt or a key", EXIT_USAGE)
    return data
