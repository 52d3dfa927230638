"""Witness core (core/witness.py): the co-signature document, the witness's memory, and the
verdict on a new checkpoint -- co-sign only a head consistent with every head co-signed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.core import checkpoints, log_tree
from signoff.core import witness as w
from signoff.core.merkle import leaf_hash

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
LOG_KEY = Ed25519PrivateKey.generate()
WITNESS_KEY = Ed25519PrivateKey.generate()
HEAD = "ab" * 32


class Log:
    """A log of `payload(i)` leaves whose tree heads and proofs come from core/log_tree."""

    def __init__(self, n: int, tag: bytes = b"", changed: int = -1) -> None:
        self.rows: dict[int, bytes] = {}
        frontier = log_tree.Frontier()
        for i in range(n):
            payload = b"changed" if i == changed else tag + b"entry %d" % i
            self.rows[i + 1] = frontier.append(leaf_hash(payload))

    def root(self, size: int) -> str:
        nodes = log_tree.from_rows(log_tree.needed([(0, size)]), self.rows)
        return log_tree.range_hash(0, size, nodes).hex()

    def proof(self, first: int, second: int) -> list[bytes]:
        ranges = log_tree.consistency_ranges(first, second)
        return log_tree.hashes(ranges, log_tree.from_rows(log_tree.needed(ranges), self.rows))

    def checkpoint(self, size: int, key: Ed25519PrivateKey = LOG_KEY) -> checkpoints.Checkpoint:
        return checkpoints.sign(key, size, HEAD, T0, root_hash=self.root(size))


def remembered(*heads: w.Head) -> w.LogState:
    return w.LogState(tuple(heads))


# -- the co-signature ------------------------------------------------------------------------


def test_a_cosignature_verifies_with_the_witness_key_and_covers_its_checkpoint() -> None:
    cp = Log(5).checkpoint(5)
    cs = w.cosign(WITNESS_KEY, cp, T0)
    assert w.verify_cosignature(WITNESS_KEY.public_key(), cs)
    assert w.covers(cs, cp)
    assert cs.log_key_id == checkpoints.key_id(LOG_KEY)
    assert cs.key_id == checkpoints.key_id(WITNESS_KEY)


def test_the_signed_bytes_are_the_documented_canonical_json() -> None:
    data = w.cosignature_bytes("0" * 16, 7, "cd" * 32, T0, "1" * 16)
    assert data == (
        b'{"key_id":"1111111111111111","log_key_id":"0000000000000000",'
        b'"root_hash":"' + b"cd" * 32 + b'","time":"2026-01-02T03:04:05.678901Z",'
        b'"tree_size":7,"type":"signoff.witness.cosignature","v":1}'
    )


@pytest.mark.parametrize(
    "change",
    [
        {"tree_size": 6},
        {"root_hash": "00" * 32},
        {"log_key_id": "f" * 16},
        {"time": T0 + dt.timedelta(microseconds=1)},
        {"key_id": "e" * 16},
        {"signature": "AAAA"},
        {"tree_size": -1},
        {"root_hash": "not hex"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_an_altered_cosignature_does_not_verify(change: dict[str, object]) -> None:
    cs = w.cosign(WITNESS_KEY, Log(5).checkpoint(5), T0)
    assert not w.verify_cosignature(WITNESS_KEY.public_key(), dataclasses.replace(cs, **change))


def test_another_witness_key_does_not_verify_it() -> None:
    cs = w.cosign(WITNESS_KEY, Log(5).checkpoint(5), T0)
    assert not w.verify_cosignature(Ed25519PrivateKey.generate().public_key(), cs)


def test_a_cosignature_does_not_cover_another_head() -> None:
    cs = w.cosign(WITNESS_KEY, Log(5).checkpoint(5), T0)
    assert not w.covers(cs, Log(6).checkpoint(6))
    assert not w.covers(cs, Log(5, b"x").checkpoint(5))


def test_a_cosignature_and_a_checkpoint_cannot_pass_for_each_other() -> None:
    # Same key signs both: the log key co-signing its own head must not mint a checkpoint.
    cp = Log(5).checkpoint(5)
    cs = w.cosign(LOG_KEY, cp, T0)
    as_checkpoint = checkpoints.make_checkpoint(
        seq=5, head_hash=HEAD, time=T0, key_id=cs.key_id, signature=cs.signature,
        tree_size=5, root_hash=cs.root_hash,
    )  # fmt: skip
    assert not checkpoints.verify(LOG_KEY.public_key(), as_checkpoint)
    as_cosignature = dataclasses.replace(cs, signature=cp.signature)
    assert not w.verify_cosignature(LOG_KEY.public_key(), as_cosignature)
    assert b'"type":"signoff.witness.cosignature"' in w.cosignature_bytes(
        cs.log_key_id, 5, cs.root_hash, T0, cs.key_id
    )


def test_a_version_1_checkpoint_cannot_be_cosigned() -> None:
    v1 = checkpoints.sign(LOG_KEY, 5, HEAD, T0)
    with pytest.raises(ValueError, match="signs no tree head"):
        w.cosign(WITNESS_KEY, v1, T0)


def test_the_json_form_round_trips_and_a_bad_one_is_refused() -> None:
    cs = w.cosign(WITNESS_KEY, Log(3).checkpoint(3), T0)
    assert w.parse_cosignature(json.loads(json.dumps(w.cosignature_json(cs)))) == cs
    with pytest.raises(ValueError, match="not a co-signature"):
        w.parse_cosignature({"tree_size": 3})


# -- the verdict -----------------------------------------------------------------------------


def test_first_contact_cosigns_without_a_proof() -> None:
    verdict = w.decide(w.LogState(), Log(9).checkpoint(9), LOG_KEY.public_key(), None)
    assert verdict == w.Cosign(w.Head(9, Log(9).root(9)))


def test_a_grown_log_with_its_proof_is_cosigned() -> None:
    log = Log(20)
    state = remembered(w.Head(7, log.root(7)))
    verdict = w.decide(state, log.checkpoint(20), LOG_KEY.public_key(), log.proof(7, 20))
    assert verdict == w.Cosign(w.Head(20, log.root(20)))


def test_the_same_head_again_is_cosigned_without_a_proof() -> None:
    log = Log(7)
    state = remembered(w.Head(7, log.root(7)))
    assert isinstance(w.decide(state, log.checkpoint(7), LOG_KEY.public_key(), None), w.Cosign)


def _alarm(verdict: w.Verdict, reason: w.Reason) -> str:
    assert isinstance(verdict, w.Alarm), verdict
    assert verdict.reason is reason, verdict
    return verdict.message


def test_a_checkpoint_of_another_key_is_an_alarm() -> None:
    log = Log(8)
    state = remembered(w.Head(7, log.root(7)))
    forged = log.checkpoint(8, Ed25519PrivateKey.generate())
    msg = _alarm(
        w.decide(state, forged, LOG_KEY.public_key(), log.proof(7, 8)), w.Reason.BAD_LOG_SIGNATURE
    )
    assert checkpoints.key_id(LOG_KEY) in msg


def test_an_altered_checkpoint_is_an_alarm() -> None:
    log = Log(8)
    cp = dataclasses.replace(log.checkpoint(8), root_hash=Log(8, b"x").root(8))
    verdict = w.decide(w.LogState(), cp, LOG_KEY.public_key(), None)
    _alarm(verdict, w.Reason.BAD_LOG_SIGNATURE)


def test_a_version_1_checkpoint_is_an_alarm() -> None:
    v1 = checkpoints.sign(LOG_KEY, 5, HEAD, T0)
    _alarm(w.decide(w.LogState(), v1, LOG_KEY.public_key(), None), w.Reason.NOT_A_TREE_HEAD)


def test_a_cut_and_resigned_log_is_truncated() -> None:
    log = Log(10)
    state = remembered(w.Head(4, log.root(4)), w.Head(10, log.root(10)))
    cut = Log(8)  # the same first 8 entries: a tail cut, re-signed at size 8
    msg = _alarm(w.decide(state, cut.checkpoint(8), LOG_KEY.public_key(), None), w.Reason.TRUNCATED)
    assert "from size 10" in msg
    assert "to size 8" in msg
    assert "entries 9..10 are gone" in msg


def test_an_old_head_shown_again_is_a_size_that_went_down() -> None:
    log = Log(10)
    state = remembered(w.Head(4, log.root(4)), w.Head(10, log.root(10)))
    msg = _alarm(
        w.decide(state, log.checkpoint(4), LOG_KEY.public_key(), None), w.Reason.SIZE_WENT_DOWN
    )
    assert "entries 5..10" in msg


def test_another_root_at_the_same_size_is_a_fork() -> None:
    log, rewritten = Log(10), Log(10, b"rewritten ")
    state = remembered(w.Head(10, log.root(10)))
    msg = _alarm(
        w.decide(state, rewritten.checkpoint(10), LOG_KEY.public_key(), None), w.Reason.FORKED
    )
    assert "size 10" in msg
    assert log.root(10)[:16] in msg
    assert rewritten.root(10)[:16] in msg


def test_a_smaller_head_with_another_root_than_remembered_is_truncation() -> None:
    # The witness co-signed 4 then 10; now a head of size 4 with a root it never co-signed.
    log = Log(10)
    state = remembered(w.Head(4, Log(4, b"other ").root(4)), w.Head(10, log.root(10)))
    verdict = w.decide(state, log.checkpoint(4), LOG_KEY.public_key(), None)
    _alarm(verdict, w.Reason.TRUNCATED)


def test_growth_without_a_proof_is_an_alarm() -> None:
    log = Log(12)
    state = remembered(w.Head(5, log.root(5)))
    msg = _alarm(w.decide(state, log.checkpoint(12), LOG_KEY.public_key(), None),
                 w.Reason.PROOF_FAILS)  # fmt: skip
    assert "from size 5 to size 12" in msg


def test_a_rewritten_history_that_grew_fails_its_proof() -> None:
    old, rewritten = Log(5), Log(12, b"rewritten ")
    state = remembered(w.Head(5, old.root(5)))
    verdict = w.decide(
        state, rewritten.checkpoint(12), LOG_KEY.public_key(), rewritten.proof(5, 12)
    )
    msg = _alarm(verdict, w.Reason.PROOF_FAILS)
    assert "size 5" in msg
    assert "size 12" in msg


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_on_random_trees_only_a_true_extension_is_cosigned(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 200), label="n")
    first = data.draw(st.integers(1, n - 1), label="first")
    log = Log(n)
    state = remembered(w.Head(first, log.root(first)))
    good = w.decide(state, log.checkpoint(n), LOG_KEY.public_key(), log.proof(first, n))
    assert good == w.Cosign(w.Head(n, log.root(n)))
    # The same new head, but the remembered one differs in one leaf: no proof can join them.
    at = data.draw(st.integers(0, first - 1), label="rewritten leaf")
    forked = Log(n, changed=at)
    state_b = remembered(w.Head(first, forked.root(first)))
    bad = w.decide(state_b, log.checkpoint(n), LOG_KEY.public_key(), log.proof(first, n))
    _alarm(bad, w.Reason.PROOF_FAILS)
    # A proof of other sizes, or with one node flipped, fails too.
    proof = log.proof(first, n)
    flip = data.draw(st.integers(0, len(proof) - 1), label="flip")
    proof[flip] = bytes([proof[flip][0] ^ 1]) + proof[flip][1:]
    _alarm(w.decide(state, log.checkpoint(n), LOG_KEY.public_key(), proof), w.Reason.PROOF_FAILS)
    # And a smaller head after this one is always an alarm.
    after = state.advance(w.Head(n, log.root(n)))
    back = w.decide(after, log.checkpoint(first), LOG_KEY.public_key(), None)
    _alarm(back, w.Reason.SIZE_WENT_DOWN)


# -- the memory ------------------------------------------------------------------------------


def test_history_is_bounded_and_keeps_the_newest() -> None:
    state = w.LogState()
    for size in range(1, w.HISTORY_LIMIT + 50):
        state = state.advance(w.Head(size, f"{size:064x}"))
    assert len(state.heads) == w.HISTORY_LIMIT
    assert state.last == w.Head(w.HISTORY_LIMIT + 49, f"{w.HISTORY_LIMIT + 49:064x}")
    assert state.advance(state.heads[-1]) is state


def test_state_round_trips_through_json() -> None:
    state = w.WitnessState().with_log(
        "0" * 16, remembered(w.Head(1, "a" * 64), w.Head(3, "b" * 64))
    )
    assert w.state_from_json(json.loads(json.dumps(w.state_to_json(state)))) == state


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"v": 2, "logs": {}}, "not a version 1"),
        ({"v": 1, "logs": []}, "logs is not an object"),
        ({"v": 1, "logs": {"nothex": []}}, "not a key id"),
        ({"v": 1, "logs": {"0" * 16: [{"size": "1", "root": "a" * 64}]}}, r"\[0\] is not"),
        ({"v": 1, "logs": {"0" * 16: [{"size": 1, "root": "A" * 64}]}}, "root is not 64 hex"),
        (
            {
                "v": 1,
                "logs": {"0" * 16: [{"size": 3, "root": "a" * 64}, {"size": 1, "root": "a" * 64}]},
            },
            "goes back from size 3",
        ),
    ],
    ids=["version", "logs", "key", "size", "root", "order"],
)
def test_a_bad_state_file_is_refused_naming_the_member(doc: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        w.state_from_json(doc, "witness.json")


# -- split view ------------------------------------------------------------------------------


def test_two_witnesses_that_saw_two_roots_for_one_size_are_a_split_view() -> None:
    a, b = Log(6), Log(6, b"other ")
    verdict = w.compare(remembered(w.Head(6, a.root(6))), remembered(w.Head(6, b.root(6))))
    assert isinstance(verdict, w.Alarm)
    assert verdict.reason is w.Reason.FORKED
    assert "size 6" in verdict.message


def test_witnesses_at_different_sizes_need_a_proof_that_then_decides() -> None:
    log, other = Log(9), Log(9, b"other ")
    small, big = w.Head(4, log.root(4)), w.Head(9, log.root(9))
    assert w.compare(remembered(big), remembered(small)) == (small, big)
    assert w.check_pair(small, big, log.proof(4, 9)) is None
    forked = w.Head(9, other.root(9))
    alarm = w.check_pair(small, forked, other.proof(4, 9))
    assert alarm is not None
    assert alarm.reason is w.Reason.PROOF_FAILS


def test_witnesses_that_agree_need_nothing() -> None:
    head = w.Head(3, Log(3).root(3))
    assert w.compare(remembered(head), remembered(head)) is None
    assert w.compare(remembered(head), w.LogState()) is None


def test_the_memory_of_a_log_spans_its_rotated_keys() -> None:
    a, b = w.Head(3, "aa" * 32), w.Head(9, "bb" * 32)
    state = (
        w.WitnessState().with_log("1" * 16, w.LogState((b,))).with_log("2" * 16, w.LogState((a,)))
    )
    assert w.merged(state, ["1" * 16, "2" * 16]).heads == (a, b)  # by size: the last is 9
    assert w.merged(state, ["2" * 16]).last == a  # one key: its own memory, as stored
    assert w.merged(state, ["3" * 16]).last is None
