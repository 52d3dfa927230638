"""The audit log's Merkle tree (core/log_tree.py) and the client's proof verifiers.

The verifiers (signoff_client.merkle) are checked against transparency-dev/merkle's published
vectors (tests/unit/data, 196 cases, good and bad); the server's proofs against the RFC 9162
definitions written out plainly here, and then against the verifiers, for random sizes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.core import log_tree
from signoff.core.audit import GENESIS, AuditRecord, seal
from signoff.core.merkle import leaf_hash, node_hash
from signoff_client import merkle as client_merkle

VECTORS = json.loads((Path(__file__).parent / "data" / "rfc6962_proof_vectors.json").read_text())


def _b(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(value: list[str] | None) -> list[bytes]:
    return [_b(p) for p in value or []]


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: c["file"])
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    args = (_b(case["leafHash"]), case["leafIdx"], case["treeSize"], _proof(case["proof"]))
    if case["wantErr"]:
        with pytest.raises(client_merkle.BadPath):
            client_merkle.verify_inclusion(*args, _b(case["root"]))
    else:
        client_merkle.verify_inclusion(*args, _b(case["root"]))


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: c["file"])
def test_consistency_vectors(case: dict[str, Any]) -> None:
    args = (case["size1"], case["size2"], _proof(case["proof"]))
    roots = (_b(case["root1"]), _b(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(client_merkle.BadPath):
            client_merkle.verify_consistency(*args, *roots)
    else:
        client_merkle.verify_consistency(*args, *roots)


def test_the_vectors_hold_both_outcomes() -> None:
    for kind in ("inclusion", "consistency"):
        outcomes = {c["wantErr"] for c in VECTORS[kind]}
        assert outcomes == {True, False}, kind


# -- the RFC's definitions, literally (2.1.1, 2.1.3.1, 2.1.4.1) ------------------------------


def mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hash(d[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def grown(leaves: list[bytes]) -> tuple[log_tree.Frontier, dict[int, bytes]]:
    """A tree grown leaf by leaf, and its stored rows (as the stores keep them)."""
    frontier = log_tree.Frontier()
    rows = {}
    for i, payload in enumerate(leaves):
        rows[i + 1] = frontier.append(leaf_hash(payload))
    return frontier, rows


def nodes_for(ranges: list[log_tree.Range], rows: dict[int, bytes]) -> dict[log_tree.Node, bytes]:
    return log_tree.from_rows(log_tree.needed(ranges), rows)


def payloads(n: int) -> list[bytes]:
    return [b"entry %d" % i for i in range(n)]


@pytest.mark.parametrize("n", [*range(1, 40), 64, 65, 127, 128, 129, 1000])
def test_stored_nodes_give_the_rfc_root_and_proofs(n: int) -> None:
    d = payloads(n)
    frontier, rows = grown(d)
    assert frontier.root() == mth(d)
    assert log_tree.range_hash(0, n, nodes_for([(0, n)], rows)) == mth(d)
    for m in {0, n // 3, n // 2, n - 1}:
        ranges = log_tree.inclusion_ranges(m, n)
        assert log_tree.hashes(ranges, nodes_for(ranges, rows)) == path(m, d)
    for first in {1, n // 3 or 1, n // 2 or 1, n - 1 or 1, n}:
        ranges = log_tree.consistency_ranges(first, n)
        assert log_tree.hashes(ranges, nodes_for(ranges, rows)) == subproof(first, d, True)


def test_a_frontier_read_back_goes_on_growing_the_same_tree() -> None:
    d = payloads(77)
    _, rows = grown(d[:50])
    read = log_tree.from_rows(log_tree.pieces(0, 50), rows)
    frontier = log_tree.Frontier(50, read)
    for i, payload in enumerate(d[50:], start=51):
        rows[i] = frontier.append(leaf_hash(payload))
    assert frontier.root() == mth(d)
    assert rows == grown(d)[1]


def test_proofs_read_logarithmically_many_nodes() -> None:
    n = 1_000_003
    worst = max(
        len(log_tree.needed(log_tree.inclusion_ranges(i, n))) for i in (0, n // 2, n - 1, 999_999)
    )
    assert worst <= 2 * n.bit_length()
    assert len(log_tree.needed(log_tree.consistency_ranges(777_777, n))) <= 2 * n.bit_length()


def test_a_missing_node_is_a_key_error_not_a_wrong_hash() -> None:
    _, rows = grown(payloads(10))
    del rows[8]
    with pytest.raises(KeyError):
        nodes_for(log_tree.inclusion_ranges(9, 10), rows)


@pytest.mark.parametrize(
    ("index", "size"), [(0, 0), (5, 5), (-1, 3)], ids=["empty", "past", "negative"]
)
def test_inclusion_of_a_leaf_outside_the_tree_is_refused(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="not below the tree size"):
        log_tree.inclusion_ranges(index, size)


@pytest.mark.parametrize(("first", "second"), [(0, 5), (6, 5)])
def test_consistency_of_bad_sizes_is_refused(first: int, second: int) -> None:
    with pytest.raises(ValueError, match="0 < first <= second"):
        log_tree.consistency_ranges(first, second)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_every_proof_verifies_and_a_tampered_one_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 300), label="size")
    d = payloads(n)
    _, rows = grown(d)
    index = data.draw(st.integers(0, n - 1), label="index")
    first = data.draw(st.integers(1, n), label="first")
    root = log_tree.range_hash(0, n, nodes_for([(0, n)], rows))
    old_root = log_tree.range_hash(0, first, nodes_for([(0, first)], rows))
    inc = log_tree.hashes(r := log_tree.inclusion_ranges(index, n), nodes_for(r, rows))
    con = log_tree.hashes(r := log_tree.consistency_ranges(first, n), nodes_for(r, rows))
    leaf = leaf_hash(d[index])
    client_merkle.verify_inclusion(leaf, index, n, inc, root)
    client_merkle.verify_consistency(first, n, con, old_root, root)

    with pytest.raises(client_merkle.BadPath):  # another leaf at that index
        client_merkle.verify_inclusion(leaf_hash(b"forged"), index, n, inc, root)
    if inc:
        at = data.draw(st.integers(0, len(inc) - 1), label="flip")
        bad = [*inc[:at], bytes([inc[at][0] ^ 1]) + inc[at][1:], *inc[at + 1 :]]
        with pytest.raises(client_merkle.BadPath):
            client_merkle.verify_inclusion(leaf, index, n, bad, root)
        with pytest.raises(client_merkle.BadPath):  # a node dropped
            client_merkle.verify_inclusion(leaf, index, n, inc[:-1], root)
    if con:
        at = data.draw(st.integers(0, len(con) - 1), label="flip")
        bad = [*con[:at], bytes([con[at][0] ^ 1]) + con[at][1:], *con[at + 1 :]]
        with pytest.raises(client_merkle.BadPath):
            client_merkle.verify_consistency(first, n, bad, old_root, root)
    if first < n:  # a log that rewrote leaf 0 is not an extension of the old one
        _, other = grown([b"rewritten", *d[1:]])
        other_root = log_tree.range_hash(0, n, nodes_for([(0, n)], other))
        with pytest.raises(client_merkle.BadPath):
            client_merkle.verify_consistency(first, n, con, old_root, other_root)


def _entry(seq: int, prev: str, payload: dict[str, Any]) -> Any:
    record = AuditRecord(
        type="decision", time=dt.datetime(2026, 1, 2, tzinfo=dt.UTC), payload=payload
    )
    return seal(record, seq=seq, prev_hash=prev)


def test_the_leaf_is_the_bytes_the_chain_hashes() -> None:
    entry = _entry(1, GENESIS, {"amount": 5})
    data = log_tree.leaf_bytes(entry)
    assert data is not None
    assert hashlib.sha256(GENESIS.encode() + data).hexdigest() == entry.hash
    assert log_tree.entry_leaf_hash(entry) == leaf_hash(data)


def test_an_altered_entry_has_no_leaf() -> None:
    entry = _entry(1, GENESIS, {"amount": 5})
    altered = _entry(1, GENESIS, {"amount": 6})
    object.__setattr__(altered, "hash", entry.hash)
    assert log_tree.leaf_bytes(altered) is None
    object.__setattr__(altered, "prev_hash", "é" * 64)
    assert log_tree.entry_leaf_hash(altered) is None


# -- a signed tree head and a proof, as a fixture for the TypeScript client's test ----------

FIXTURE = Path(__file__).parent / "data" / "audit_proof_fixture.json"


def proof_fixture() -> dict[str, Any]:
    """A version 2 checkpoint over 7 entries and the inclusion proof of entry 3 (Ed25519 is
    deterministic: the same bytes every run)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from signoff.core.checkpoints import sign

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    entries, prev = [], GENESIS
    for seq in range(1, 8):
        entries.append(_entry(seq, prev, {"n": seq, "note": "é\n"}))
        prev = entries[-1].hash
    frontier, rows = log_tree.Frontier(), {}
    for e in entries:
        leaf = log_tree.entry_leaf_hash(e)
        assert leaf is not None
        rows[e.seq] = frontier.append(leaf)
    at = dt.datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=dt.UTC)
    cp = sign(key, 7, entries[-1].hash, at, root_hash=frontier.root().hex())
    ranges = log_tree.inclusion_ranges(2, 7)
    proof = log_tree.hashes(ranges, nodes_for(ranges, rows))
    leaf_data = log_tree.leaf_bytes(entries[2])
    assert leaf_data is not None
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "public_key_raw_b64": base64.b64encode(raw).decode(),
        "checkpoint": {
            "seq": cp.seq,
            "head_hash": cp.head_hash,
            "time_seconds": int(at.timestamp()),
            "time_nanos": at.microsecond * 1000,
            "key_id": cp.key_id,
            "signature": cp.signature,
            "tree_size": cp.tree_size,
            "root_hash": cp.root_hash,
        },
        "inclusion": {
            "entry_hash": entries[2].hash,
            "leaf_b64": base64.b64encode(leaf_data).decode(),
            "leaf_index": 2,
            "tree_size": 7,
            "proof_b64": [base64.b64encode(p).decode() for p in proof],
        },
    }


def test_the_typescript_fixture_is_what_the_server_signs_and_proves() -> None:
    # clients/typescript/test/audit-proofs.test.ts verifies this file; regenerate it with
    # SIGNOFF_WRITE_FIXTURES=1 after a change of the contract.
    expected = json.dumps(proof_fixture(), indent=2) + "\n"
    if os.environ.get("SIGNOFF_WRITE_FIXTURES"):
        FIXTURE.write_text(expected)
    assert FIXTURE.read_text() == expected
