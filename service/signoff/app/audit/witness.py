"""Witness co-signatures on the server: AddCosignature checks and stores one, and the
checkpoints handed out carry theirs. Which witnesses count is the verifier's choice (it
brings their public keys); the server only refuses what cannot be a witness's true word."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from signoff import pb
from signoff.app.reviews.desk import Identity
from signoff.core import checkpoints, wire
from signoff.core.witness import Cosignature, verify_cosignature
from signoff.errors import InvalidArgument, PermissionDenied
from signoff.logs import event
from signoff.store.base import Store

log = logging.getLogger("signoff.audit")
A = pb.audit
WITNESS = "witness"
MAX_PEM_BYTES = 1024  # an Ed25519 public PEM is 113 bytes


def require_witness(who: Identity) -> None:
    """AddCosignature is for witnesses."""
    if WITNESS not in who.roles:
        raise PermissionDenied(f"{who.id} needs the role witness")


def require_reader(who: Identity) -> None:
    """Checkpoints and consistency proofs are for auditors and witnesses: they carry hashes
    and signatures, never an entry's content."""
    if not {"auditor", WITNESS} & who.roles:
        raise PermissionDenied(f"{who.id} needs the role auditor or witness")


def cosignature_from_proto(msg: A.Cosignature) -> Cosignature:
    """The core form of a co-signature message (fields checked when its bytes are built)."""
    return Cosignature(
        log_key_id=msg.log_key_id,
        tree_size=msg.tree_size,
        root_hash=msg.root_hash,
        time=wire.timestamp(msg.time, "cosignature.time"),
        key_id=msg.key_id,
        signature=msg.signature,
    )


def cosignature_proto(cs: Cosignature) -> A.Cosignature:
    """A co-signature as its API message."""
    out = A.Cosignature(
        log_key_id=cs.log_key_id,
        tree_size=cs.tree_size,
        root_hash=cs.root_hash,
        key_id=cs.key_id,
        signature=cs.signature,
    )
    out.time.FromDatetime(cs.time)
    return out


def attach(out: Sequence[A.Checkpoint], cosignatures: Mapping[int, Sequence[Cosignature]]) -> None:
    """Put each checkpoint's stored co-signatures on its message."""
    for cp in out:
        cp.cosignatures.extend(cosignature_proto(cs) for cs in cosignatures.get(cp.seq, ()))


async def add_cosignature(
    store: Store, who: Identity, req: A.AddCosignatureRequest
) -> A.AddCosignatureResponse:
    """Check a witness's co-signature of the stored checkpoint at `req.seq`, then store it."""
    require_witness(who)
    if req.seq < 1:
        raise InvalidArgument("seq", f"must be at least 1, not {req.seq}")
    if not req.HasField("cosignature"):
        raise InvalidArgument("cosignature", "is required")
    pem = req.public_key_pem.encode()
    if not pem or len(pem) > MAX_PEM_BYTES:
        raise InvalidArgument(
            "public_key_pem", f"must be an Ed25519 public key PEM of at most {MAX_PEM_BYTES} bytes"
        )
    try:
        key = checkpoints.public_key_from_pem(pem)
    except ValueError as exc:
        raise InvalidArgument("public_key_pem", str(exc)) from None
    cs = cosignature_from_proto(req.cosignature)
    if cs.key_id != checkpoints.key_id(key):
        raise InvalidArgument(
            "cosignature.key_id",
            f"{cs.key_id[:16]!r} is not the id of public_key_pem ({checkpoints.key_id(key)})",
        )
    if not verify_cosignature(key, cs):
        raise InvalidArgument("cosignature.signature", "does not verify with public_key_pem")
    count = await store.add_cosignature(req.seq, cs)
    event(log, "checkpoint co-signed", seq=req.seq, witness=cs.key_id, cosignatures=count)
    return A.AddCosignatureResponse(cosignatures=count)
