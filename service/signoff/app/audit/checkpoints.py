"""The checkpoints that anchor the audit log: the server's signing key, signing the head when
due, the check that a stored checkpoint vouches for the entries it names, and GetCheckpoints.

The signed document itself is `signoff.core.checkpoints` (a contract); this module is where
the store, the clock and the keys meet it."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from signoff import pb
from signoff.app.audit import proofs, witness
from signoff.core import checkpoints
from signoff.errors import InvalidArgument
from signoff.ids import Clock
from signoff.logs import event
from signoff.store.base import Checkpoint, CheckpointSuperseded, Store

log = logging.getLogger("signoff.audit")
A = pb.audit


@dataclass(frozen=True)
class Signer:
    """The server's checkpoint key, and the other public keys whose checkpoints count."""

    key: Ed25519PrivateKey
    also_trusted: tuple[Ed25519PublicKey, ...] = ()

    @property
    def trusted(self) -> checkpoints.TrustedKeys:
        """This key's public half and `also_trusted` (earlier keys, after a rotation)."""
        return checkpoints.TrustedKeys([self.key, *self.also_trusted])

    @property
    def key_id(self) -> str:
        """Identifier of the public key."""
        return checkpoints.key_id(self.key.public_key())

    def sign(self, seq: int, head_hash: str, now: dt.datetime, root_hash: str = "") -> Checkpoint:
        """A checkpoint of (seq, head_hash) at `now`, and of the tree head (seq, root_hash)
        when given (version 2)."""
        return checkpoints.sign(self.key, seq, head_hash, now, root_hash=root_hash)


def trusted_keys(signer: Signer | None) -> checkpoints.TrustedKeys:
    """The keys whose checkpoints count on a server with `signer`."""
    # Without a signing key no key is trusted: every checkpoint then fails verification.
    return signer.trusted if signer is not None else checkpoints.TrustedKeys()


def checkpoint_proto(cp: Checkpoint) -> A.Checkpoint:
    """A checkpoint as its API message."""
    out = A.Checkpoint(
        seq=cp.seq,
        head_hash=cp.head_hash,
        key_id=cp.key_id,
        signature=cp.signature,
        tree_size=cp.tree_size,
        root_hash=cp.root_hash,
    )
    out.time.FromDatetime(cp.time)
    return out


def problem(
    trusted: checkpoints.TrustedKeys, cp: Checkpoint, entry_hash: str | None, root: str | None
) -> str:
    """Why `cp` does not vouch for the entry hash and tree root the log gives at its seq
    ("" when it does; None: not known here)."""
    # A checkpoint vouches for the chain only if a trusted key signed it: anyone who can
    # write the database can also write a checkpoint naming a key id of their own.
    if bad := trusted.problem(cp):
        return f"bad signature: {bad}"
    if entry_hash is not None and entry_hash != cp.head_hash:
        return (
            f"checkpoint mismatch: the signed checkpoint at seq {cp.seq} does not match "
            "the chain (entries were rewritten)"
        )
    if root is not None and cp.root_hash and root != cp.root_hash:
        return (
            f"checkpoint mismatch: the signed checkpoint at seq {cp.seq} signs tree root "
            f"{cp.root_hash[:12]}..., the entries give {root[:12]}... (the tree head "
            "does not match the log)"
        )
    return ""


async def listing(
    store: Store, signer: Signer | None, req: A.GetCheckpointsRequest
) -> A.GetCheckpointsResponse:
    """GetCheckpoints: the newest checkpoints from `req.from_seq`, with their witnesses'
    co-signatures, and the public key to check them with."""
    limit = req.limit or 100
    if not 0 < limit <= 10_000:
        raise InvalidArgument("limit", "must be 1-10000")
    cps = (await store.checkpoints(req.from_seq, 0))[-limit:]
    out = A.GetCheckpointsResponse(checkpoints=[checkpoint_proto(c) for c in cps])
    if cps:
        witness.attach(out.checkpoints, await store.cosignatures(cps[0].seq, cps[-1].seq))
    if signer is not None:
        out.public_key_pem = checkpoints.public_pem(signer.key.public_key()).decode()
        out.key_id = signer.key_id
    return out


async def warn_if_untrusted(store: Store, trusted: checkpoints.TrustedKeys) -> None:
    """Log a warning when the newest checkpoint's key is not `trusted`."""
    last = await store.last_checkpoint()
    if last is None or trusted.get(last.key_id) is not None:
        return
    event(
        log,
        "audit.untrusted_checkpoint",
        logging.WARNING,
        seq=last.seq,
        key_id=last.key_id,
        trusted=", ".join(trusted.ids),
        hint="VerifyAudit fails on checkpoints no trusted key signed; if this is an earlier "
        "signing key of this deployment, add its public key to audit.trusted_keys",
    )


async def sign_if_due(
    store: Store, clock: Clock, signer: Signer, every: int, interval: dt.timedelta
) -> Checkpoint | None:
    """Sign the head if `every` entries or `interval` passed since the last checkpoint."""
    # A version 2 checkpoint signs the chain head and the tree head of the same log, so
    # it signs as far as the tree is built: first build it up to the head (a step's
    # worth under load; an existing log's whole tree once, after the upgrade).
    seq = await store.build_tree()
    last = await store.last_checkpoint()
    if seq == 0 or (last is not None and last.seq >= seq):
        return None
    now = clock.now()
    if last is not None and seq - last.seq < every and now - last.time < interval:
        return None
    [entry] = await store.read_audit(seq, 1)
    root = await proofs.root(store, seq)
    cp = signer.sign(seq, entry.hash, now, root.hex())
    try:
        await store.add_checkpoint(cp)
    except CheckpointSuperseded as exc:
        # Replicas on one database check at the same moments: one signs, the others
        # find its checkpoint. Nothing failed, so one quiet event, no traceback.
        event(log, "audit.checkpoint_by_another", logging.DEBUG, seq=seq, last=exc.last)
        return None
    event(log, "audit.checkpoint", seq=seq, key_id=cp.key_id)
    return cp
