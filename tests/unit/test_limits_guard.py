"""The Guard applies the limits before the handler: a call refused runs nothing."""

from __future__ import annotations

import grpc
import pytest

from signoff import pb
from signoff.api.errors import Failure, Guard
from signoff.api.methods import Method
from signoff.auth import DevAuthenticator
from signoff.limits import Limiter, LimitSettings


class Call:
    """A transport's view of a call, with the deadline the test says."""

    def __init__(self, left: float | None, token: str = "bot") -> None:
        self.left = left
        self.token = token

    def header(self, name: str) -> str | None:
        return f"Bearer {self.token}" if name == "authorization" else None

    def time_remaining(self) -> float | None:
        return self.left

    def peer_certificate(self) -> bytes | None:
        return None

    def peer(self) -> str:
        return "127.0.0.1"


@pytest.fixture
def ran() -> list[str]:
    return []


def guard(ran: list[str], **limits: object) -> tuple[Guard, Method]:
    async def handler(who, data: bytes) -> pb.review.Caller:
        ran.append(who.id)
        return pb.review.Caller()

    async def denied(method: str, who: str, message: str, peer: str) -> None:
        ran.append(f"audited {who}")

    limiter = Limiter(LimitSettings.model_validate(limits))
    method = Method("s", "M", pb.review.WhoAmIRequest, pb.review.Caller, handler)
    return Guard(DevAuthenticator(), denied, limiter), method


@pytest.mark.parametrize("left", [0.0, -0.25])
async def test_a_call_past_its_deadline_is_refused_before_the_handler(ran, left):
    g, method = guard(ran)
    with pytest.raises(Failure) as err:
        await g.unary(method, Call(left), b"")
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "nothing was done" in err.value.message
    assert ran == []  # not run, not audited
    assert g.limiter.expired == 1


@pytest.mark.parametrize("left", [None, 0.001, 30.0])
async def test_a_call_in_time_is_served(ran, left):
    g, method = guard(ran)
    await g.unary(method, Call(left), b"")
    assert ran == ["bot"]
    assert g.limiter.expired == 0


async def test_a_rate_limited_call_carries_retry_info_and_is_not_audited(ran):
    g, method = guard(ran, rate={"rate": 0.5, "burst": 1})
    await g.unary(method, Call(None), b"")
    with pytest.raises(Failure) as err:
        await g.unary(method, Call(None), b"")
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    (info,) = err.value.details
    assert info.DESCRIPTOR.full_name == "google.rpc.RetryInfo"
    assert 1.9 < info.retry_delay.ToNanoseconds() / 1e9 <= 2.0
    assert ran == ["bot"]
    assert g.limiter.in_flight == 0  # the refused call took no slot, the served one gave it back
