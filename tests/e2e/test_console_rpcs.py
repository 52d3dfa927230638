"""The reviewer console's RPCs through the real server, on SQLite and PostgreSQL: WatchQueue
(the live pending queue), ListPrecedents (how the same case was decided before), WhoAmI.

Callers come from a tokens file, so roles are real: reviewers of one group, an agent, an
auditor, an admin. Time is a FakeClock: deadlines and resolution order are exact.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc, review_pb2_grpc

from .conftest import FakeClock, MakeServer, ServerHandle, write_tokens

R = pb.review
READ_TIMEOUT_S = 10.0

PEOPLE = {  # token: (identity, roles)
    "bot": ("support-bot", ["agent"]),
    "vipbot": ("vip-bot", ["agent"]),
    "alice": ("alice", ["reviewer:finance"]),
    "bob": ("bob", ["reviewer:finance"]),
    "lena": ("lena", ["reviewer:finance-leads"]),
    "dora": ("dora", ["reviewer:finance-directors"]),
    "dave": ("dave", ["reviewer:comms"]),
    "multi": ("multi", ["reviewer:finance", "agent", "reviewer:dba"]),
    "ann": ("ann", ["auditor"]),
    "root": ("root", ["admin"]),
}


def _tokens_file(tmp_path: Path) -> Path:
    # Policies read principal tags as facts: the vip tag is vouched for by the tokens file.
    return write_tokens(tmp_path, PEOPLE, principals={"vip-bot": {"tags": ["vip"]}})


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class Console:
    """One server with the people above, and async stubs in the test's own loop."""

    def __init__(self, server: ServerHandle, clock: FakeClock) -> None:
        self.server, self.clock = server, clock
        self.channel = grpc.aio.insecure_channel(server.target)
        self.reviews = review_pb2_grpc.ReviewServiceStub(self.channel)
        self.decisions = decision_pb2_grpc.DecisionServiceStub(self.channel)

    async def refund(
        self, amount: float = 750, *, action: str = "refund.issue", vip: bool = False
    ) -> pb.common.Decision:
        """Ask for a refund as the support bot (above 500: a finance review), or as the
        bot the tokens file tags vip (a finance-leads review)."""
        req = pb.common.ActionRequest()
        req.action.name = action
        req.action.params.update({"amount": amount, "currency": "EUR"})
        req.principal.id = "vip-bot" if vip else "support-bot"
        return await self.decisions.Evaluate(req, metadata=_md("vipbot" if vip else "bot"))

    async def migration(self) -> pb.common.Decision:
        """A production schema migration: a dba review, 8 h timeout."""
        req = pb.common.ActionRequest()
        req.action.name = "db.migrate"
        req.action.params.update({"sql": "ALTER TABLE t ADD COLUMN c int"})
        req.principal.id = "support-bot"
        req.resource.attributes.update({"environment": "production"})
        return await self.decisions.Evaluate(req, metadata=_md("bot"))

    async def act(self, review_id: str, token: str, verdict: int = R.VERDICT_APPROVE) -> R.Review:
        """A reviewer acts on the review's current version."""
        current = await self.reviews.GetReview(
            R.GetReviewRequest(review_id=review_id), metadata=_md(token)
        )
        req = R.SubmitReviewRequest(
            review_id=review_id, verdict=verdict, expected_version=current.version
        )
        if verdict == R.VERDICT_MODIFY:
            req.params.update({"amount": 600, "currency": "EUR"})
        return await self.reviews.SubmitReview(req, metadata=_md(token))

    async def sweep(self) -> int:
        """Expire or escalate what fell due at the clock's time (as the sweeper would)."""
        desk = self.server.running.app.reviews
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(desk.sweep(), self.server.loop)
        )

    async def precedents(self, review_id: str, token: str = "alice", limit: int = 0) -> list[str]:
        """The ids ListPrecedents answers."""
        resp = await self.reviews.ListPrecedents(
            R.ListPrecedentsRequest(review_id=review_id, limit=limit), metadata=_md(token)
        )
        return [r.review_id for r in resp.precedents]


@pytest.fixture
async def console(make_server: MakeServer, backend: str, tmp_path: Path) -> AsyncIterator[Console]:
    clock = FakeClock()
    # The re-check is far away: every snapshot a test sees was caused by a wake-up. The
    # sweeper is too: tests sweep themselves, right after moving the clock.
    server = make_server(
        backend=backend, clock=clock, auth={"tokens_file": _tokens_file(tmp_path)},
        watch_recheck=60.0, sweep_interval=3600.0,
    )  # fmt: skip
    c = Console(server, clock)
    yield c
    await c.channel.close()


class Watch:
    """A WatchQueue stream read by a task into a queue, so a test awaits snapshots with a
    timeout without cancelling the call's reads."""

    def __init__(self, reviews: review_pb2_grpc.ReviewServiceStub, token: str, **req: Any):
        self.call = reviews.WatchQueue(R.WatchQueueRequest(**req), metadata=_md(token))
        self.snapshots: asyncio.Queue[R.Queue | BaseException] = asyncio.Queue()
        self.received = 0
        self._task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        try:
            async for snapshot in self.call:
                self.snapshots.put_nowait(snapshot)
        except BaseException as exc:
            self.snapshots.put_nowait(exc)
            raise

    async def next(self) -> R.Queue:
        """The next snapshot (fails the test if none comes in READ_TIMEOUT_S)."""
        async with asyncio.timeout(READ_TIMEOUT_S):
            got = await self.snapshots.get()
        if isinstance(got, BaseException):
            raise got
        self.received += 1
        return got

    async def until(self, done: Any) -> R.Queue:
        """Snapshots until one satisfies `done`; that one."""
        while not done(snapshot := await self.next()):
            pass
        return snapshot

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _ids(queue: R.Queue) -> list[str]:
    return [r.review_id for r in queue.reviews]


def _groups(queue: R.Queue) -> dict[str, tuple[int, dt.datetime, dt.datetime | None]]:
    return {
        g.reviewer_group: (
            g.pending,
            g.oldest_created_at.ToDatetime(dt.UTC),
            g.next_expires_at.ToDatetime(dt.UTC) if g.HasField("next_expires_at") else None,
        )
        for g in queue.groups
    }


# -- WhoAmI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "roles", "groups"),
    [
        ("multi", ["agent", "reviewer:dba", "reviewer:finance"], ["dba", "finance"]),
        ("bot", ["agent"], []),
        ("ann", ["auditor"], []),
    ],
)
async def test_whoami_names_the_caller_its_roles_and_groups(
    console: Console, token: str, roles: list[str], groups: list[str]
) -> None:
    me = await console.reviews.WhoAmI(R.WhoAmIRequest(), metadata=_md(token))
    assert me == R.Caller(id=PEOPLE[token][0], roles=roles, reviewer_groups=groups)


async def test_whoami_in_dev_mode_is_everything(server: ServerHandle) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        me = await review_pb2_grpc.ReviewServiceStub(channel).WhoAmI(
            R.WhoAmIRequest(), metadata=_md("carol")
        )
    assert me.id == "carol"
    assert list(me.reviewer_groups) == ["*"]
    assert me.act_for_others
    assert list(me.roles) == sorted(me.roles)


async def test_whoami_without_a_token_is_unauthenticated(console: Console) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await console.reviews.WhoAmI(R.WhoAmIRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- WatchQueue -----------------------------------------------------------------------------


async def test_queue_sends_the_backlog_then_each_change(console: Console) -> None:
    t0 = console.clock.now()
    first = (await console.refund()).review_id  # finance, 1 day
    console.clock.advance(minutes=1)
    dba = (await console.migration()).review_id  # dba, 8 hours
    await console.refund(200)  # allowed: no review
    watch = Watch(console.reviews, "multi")
    try:
        now = await watch.next()
        assert _ids(now) == [first, dba]
        assert _groups(now) == {
            "dba": (1, t0 + dt.timedelta(minutes=1), t0 + dt.timedelta(hours=8, minutes=1)),
            "finance": (1, t0, t0 + dt.timedelta(days=1)),
        }
        assert now.pending == 2
        assert now.server_time.ToDatetime(dt.UTC) == console.clock.now()
        assert [g.reviewer_group for g in now.groups] == ["dba", "finance"]

        console.clock.advance(minutes=1)
        second = (await console.refund(900)).review_id
        opened = await watch.next()
        assert _ids(opened) == [first, dba, second]
        assert _groups(opened)["finance"] == (2, t0, t0 + dt.timedelta(days=1))
        assert opened.pending == 3
        assert opened.server_time.ToDatetime(dt.UTC) == t0 + dt.timedelta(minutes=2)

        await console.act(first, "alice")
        approved = await watch.next()
        assert _ids(approved) == [dba, second]
        later = t0 + dt.timedelta(minutes=2)
        assert _groups(approved)["finance"] == (1, later, later + dt.timedelta(days=1))
        assert approved.pending == 2
        assert approved.reviews[1].version == 1
    finally:
        await watch.close()


async def test_queue_of_chosen_groups_with_a_limit(console: Console) -> None:
    ids = []
    for _ in range(4):
        ids.append((await console.refund()).review_id)
        console.clock.advance(seconds=1)
    await console.migration()
    watch = Watch(console.reviews, "multi", reviewer_groups=["finance"], limit=2)
    try:
        q = await watch.next()
        assert _ids(q) == ids[:2]  # the oldest first, at most `limit`
        assert q.pending == 4  # but counted in full
        assert list(_groups(q)) == ["finance"]
    finally:
        await watch.close()
    for token in ("root", "ann", "dora"):  # admin, auditor: every group; dora: none pending
        watch = Watch(console.reviews, token)
        try:
            q = await watch.next()
            expected = {"dba", "finance"} if token != "dora" else set()
            assert set(_groups(q)) == expected, token
        finally:
            await watch.close()


async def test_a_burst_of_openings_yields_a_few_snapshots_and_the_last_is_right(
    console: Console,
) -> None:
    n = 200
    watch = Watch(console.reviews, "alice", limit=50)
    try:
        assert (await watch.next()).pending == 0
        watch.received = 0
        opened: list[str] = []
        for _ in range(n // 20):  # 20 agents at a time, as fast as the server takes them
            batch = await asyncio.gather(*(console.refund() for _i in range(20)))
            opened += [d.review_id for d in batch]
        last = await watch.until(lambda q: q.pending == n)
        print(f"\n{n} openings -> {watch.received} snapshots")
        assert watch.received <= n // 10, watch.received
        assert len(last.reviews) == 50
        assert set(_ids(last)) <= set(opened)
        assert _groups(last)["finance"][0] == n
    finally:
        await watch.close()


@pytest.mark.parametrize(
    ("token", "req", "code", "message"),
    [
        ("alice", {"limit": 501}, grpc.StatusCode.INVALID_ARGUMENT, "limit: must be 1-500"),
        ("alice", {"limit": -1}, grpc.StatusCode.INVALID_ARGUMENT, "limit: must be 1-500"),
        ("alice", {"reviewer_groups": ["dba"]}, grpc.StatusCode.PERMISSION_DENIED, "for dba"),
        (
            "multi",
            {"reviewer_groups": ["finance", "comms", "ops"]},
            grpc.StatusCode.PERMISSION_DENIED,
            "for comms, ops",
        ),
        ("bot", {}, grpc.StatusCode.PERMISSION_DENIED, "a queue is for reviewers"),
        ("bot", {"reviewer_groups": ["finance"]}, grpc.StatusCode.PERMISSION_DENIED, "finance"),
        ("nobody", {}, grpc.StatusCode.UNAUTHENTICATED, ""),
    ],
)
async def test_queue_refusals(
    console: Console, token: str, req: dict[str, Any], code: grpc.StatusCode, message: str
) -> None:
    call = console.reviews.WatchQueue(R.WatchQueueRequest(**req), metadata=_md(token))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async with asyncio.timeout(READ_TIMEOUT_S):
            await call.read()
    assert err.value.code() == code
    assert message in (err.value.details() or "")


def test_a_cancelled_queue_stream_leaves_nothing_on_the_server(make_server: MakeServer) -> None:
    server = make_server()
    desk = server.running.app.reviews

    async def tasks() -> int:
        return len(asyncio.all_tasks())

    before = server.call(tasks())
    stub = review_pb2_grpc.ReviewServiceStub(server.channel())
    streams = [stub.WatchQueue(R.WatchQueueRequest(), metadata=_md("alice")) for _ in range(3)]
    for stream in streams:
        next(stream)
    assert desk.queue_watchers == 3
    for stream in streams:
        stream.cancel()
    # The server learns of a cancel asynchronously; nothing to await from here, so look.
    deadline = time.monotonic() + READ_TIMEOUT_S
    while (desk.queue_watchers, server.call(tasks())) != (0, before):
        assert time.monotonic() < deadline, (desk.queue_watchers, server.call(tasks()), before)
        time.sleep(0.02)
    assert desk.hub._events == {}


@pytest.mark.postgres_only
async def test_a_review_opened_on_one_replica_shows_in_a_queue_watched_on_another(
    make_server: MakeServer, backend: str, tmp_path: Path
) -> None:
    tokens = {"tokens_file": _tokens_file(tmp_path)}
    first = make_server(backend=backend, auth=tokens, watch_recheck=60.0)
    second = make_server(db=first.db, auth=tokens, watch_recheck=60.0)
    feed = second.running.app.store.feed  # type: ignore[attr-defined]
    second.call(asyncio.wait_for(feed.listening.wait(), READ_TIMEOUT_S))
    one, two = Console(first, FakeClock()), Console(second, FakeClock())
    watch = Watch(two.reviews, "alice")
    try:
        assert (await watch.next()).pending == 0
        opened = (await one.refund()).review_id
        started = time.monotonic()
        q = await watch.next()  # the re-check is 60 s away: this came through the feed
        print(f"\ncross-replica queue update after {1000 * (time.monotonic() - started):.0f} ms")
        assert _ids(q) == [opened]
        await one.act(opened, "alice")
        assert (await watch.next()).pending == 0
    finally:
        await watch.close()
        await one.channel.close()
        await two.channel.close()


# -- ListPrecedents -------------------------------------------------------------------------


async def test_precedents_are_decided_reviews_of_the_same_action_and_rules_newest_first(
    console: Console,
) -> None:
    c = console
    expired = (await c.refund()).review_id
    c.clock.advance(days=1, minutes=1)
    assert await c.sweep() == 1  # large-refund times out: deny
    decided = {}
    for name, token, verdict in [
        ("approved", "alice", R.VERDICT_APPROVE),
        ("rejected", "alice", R.VERDICT_REJECT),
        ("modified", "bob", R.VERDICT_MODIFY),
    ]:
        rid = (await c.refund()).review_id
        c.clock.advance(minutes=1)
        await c.act(rid, token, verdict)
        decided[name] = rid
    cancelled = (await c.refund()).review_id
    c.clock.advance(minutes=1)
    await c.reviews.CancelReview(R.CancelReviewRequest(review_id=cancelled), metadata=_md("bot"))
    void = (await c.refund(action="refund.void")).review_id  # same rule, other action
    c.clock.advance(minutes=1)
    await c.act(void, "alice")
    shadowed = (await c.refund(6000)).review_id  # + a shadow rule, which decides nothing
    c.clock.advance(minutes=1)
    await c.act(shadowed, "bob")
    vip = (await c.refund(vip=True)).review_id  # other rules (vip-account first)
    c.clock.advance(minutes=1)
    await c.act(vip, "lena")
    await c.refund()  # still pending
    this = (await c.refund()).review_id

    expected = [shadowed, decided["modified"], decided["rejected"], decided["approved"], expired]
    assert await c.precedents(this) == expected
    assert await c.precedents(this, limit=2) == expected[:2]
    assert await c.precedents(this, "ann") == expected
    assert await c.precedents(this, "bot") == []  # its own review, but it reviews no group
    resp = await c.reviews.ListPrecedents(
        R.ListPrecedentsRequest(review_id=this), metadata=_md("alice")
    )
    got = {r.review_id: r for r in resp.precedents}
    assert [a.reviewer for a in got[decided["modified"]].acts] == ["bob"]
    assert got[decided["modified"]].final_params["amount"] == 600
    assert got[decided["rejected"]].state == R.REVIEW_STATE_REJECTED
    assert got[expired].state == R.REVIEW_STATE_EXPIRED
    assert len(got[expired].acts) == 0
    # A resolved review has precedents too, never itself among them.
    assert await c.precedents(decided["rejected"]) == [
        x for x in expected if x != decided["rejected"]
    ]


async def test_precedents_show_only_groups_the_caller_reviews(console: Console) -> None:
    c = console
    by_lead = (await c.refund(vip=True)).review_id  # finance-leads, 2 h, then directors
    escalated = (await c.refund(vip=True)).review_id
    c.clock.advance(minutes=1)
    await c.act(by_lead, "lena")
    c.clock.advance(hours=2)
    assert await c.sweep() == 1  # escalated to finance-directors
    await c.act(escalated, "dora")
    this = (await c.refund(vip=True)).review_id
    assert await c.precedents(this, "lena") == [by_lead]
    assert await c.precedents(this, "root") == [escalated, by_lead]


@pytest.mark.parametrize(
    ("review", "token", "limit", "code", "message"),
    [
        ("", "alice", 0, grpc.StatusCode.INVALID_ARGUMENT, "review_id: is required"),
        ("nope", "alice", 0, grpc.StatusCode.NOT_FOUND, "review nope not found"),
        ("this", "dave", 0, grpc.StatusCode.PERMISSION_DENIED, "may not see review"),
        ("this", "dora", 0, grpc.StatusCode.PERMISSION_DENIED, "may not see review"),
        ("this", "alice", 51, grpc.StatusCode.INVALID_ARGUMENT, "limit: must be 1-50"),
        ("this", "alice", -3, grpc.StatusCode.INVALID_ARGUMENT, "limit: must be 1-50"),
        ("this", "nobody", 0, grpc.StatusCode.UNAUTHENTICATED, ""),
    ],
)
async def test_precedents_refusals(
    console: Console,
    review: str,
    token: str,
    limit: int,
    code: grpc.StatusCode,
    message: str,
) -> None:
    this = (await console.refund()).review_id
    review_id = this if review == "this" else review
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await console.precedents(review_id, token, limit)
    assert err.value.code() == code
    assert message in (err.value.details() or "")
