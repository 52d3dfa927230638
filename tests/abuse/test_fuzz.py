"""Odd but well-typed input is INVALID_ARGUMENT, never INTERNAL (issue 19, item 6).

Hypothesis builds requests of every RPC from the proto descriptors, leaning to the edges
(limits of each integer type, NaN, unknown enum numbers, Timestamps outside years 1-9999,
deep Structs), and sends each over gRPC and over Connect (binary, and JSON when JSON can
say it) to one real server per backend. No call may
come back INTERNAL, UNKNOWN or UNAVAILABLE, nothing may reach the log with a stack trace, and
afterwards the server answers and its audit chain verifies.

Bounded in time: a fixed number of examples per RPC, derandomized (the same examples on
every run, so CI cannot flake on a new one), no example database.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff import pb

from . import inproc
from .inproc import Target, assert_alive_and_valid
from .messages import messages
from .wire import BAD_CODES, Caller, Rpc, every_rpc, to_json, watching_logs

EXAMPLES = 20  # per RPC and backend: tests/abuse runs in under a minute on 2 busy cores
RAW_EXAMPLES = 5  # per RPC: undecodable bytes mostly stop at the first byte
RPCS = every_rpc()
target = inproc.target  # the fixture: one server per backend for this module


def _check(outcomes: list, what: str) -> None:
    bad = [o for o in outcomes if o.code in BAD_CODES or o.code.startswith("HTTP_")]
    assert not bad, f"{what}: {bad}"


@pytest.mark.parametrize("rpc", RPCS, ids=lambda r: r.name)
def test_no_request_of_any_rpc_is_an_internal_error(rpc: Rpc, target: Target) -> None:
    caller = Caller(target.server)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(messages(rpc.request.DESCRIPTOR, target.known))
    def one(request: pb.common.ActionRequest) -> None:
        outcomes = caller.both(rpc, request.SerializeToString())
        document = to_json(request)
        if document is not None:  # as the console sends it, when JSON can say it
            outcomes.append(caller.json(rpc, document))
        _check(outcomes, f"{rpc.name}({request!r:.500})")

    with watching_logs() as log:
        try:
            one()
        finally:
            caller.close()
    assert not log.records, log.report()


@pytest.mark.parametrize("rpc", RPCS, ids=lambda r: r.name)
def test_random_bytes_to_any_rpc_are_refused_or_served(rpc: Rpc, target: Target) -> None:
    caller = Caller(target.server)

    @settings(max_examples=RAW_EXAMPLES, derandomize=True, database=None, deadline=None)
    @given(st.binary(max_size=64))
    def one(data: bytes) -> None:
        _check(caller.both(rpc, data), f"{rpc.name}({data!r})")

    with watching_logs() as log:
        try:
            one()
        finally:
            caller.close()
    assert not log.records, log.report()


def test_the_server_is_alive_and_its_chain_valid_after_the_fuzzing(target: Target) -> None:
    assert_alive_and_valid(target)
