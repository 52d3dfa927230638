"""`signoff serve --workers 2` with e-mail approvals: one link redeemed through both worker
processes at once opens exactly one session (single use is kept in the database)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import grpc
import httpx
import pytest

from signoff import pb
from signoff_client._gen import decision_pb2_grpc

from .email_inbox import Inbox, email_settings, link_of, smtp_inbox  # noqa: F401 (a fixture)
from .test_workers import Server, database, serve  # noqa: F401 (a fixture)

ANSWERS = ("email.link_redeemed", "email.redeem_refused")
REDEEMS = 16  # each on its own connection: the kernel spreads them over the two workers
SECRET = "w" * 40


async def test_one_link_redeemed_through_two_workers_at_once_opens_one_session(
    database: str,  # noqa: F811 (the fixture)
    inbox: Inbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.chdir(tmp_path)  # on PostgreSQL the signing key is created here
    monkeypatch.setenv("SIGNOFF_NOTIFY__EMAIL", json.dumps(email_settings(inbox, 1, SECRET)))
    to = [{"address": "alice@example.com", "reviewer": "alice"}]
    monkeypatch.setenv("SIGNOFF_NOTIFY__ROUTES", json.dumps({"finance": {"email": {"to": to}}}))
    async with serve(database) as (server, target):
        http = server.events("server.started")[-1]["http"]
        request = pb.common.ActionRequest(request_id="link-race")
        request.action.name = "refund.issue"
        request.action.params.update({"amount": 750, "currency": "EUR"})
        request.principal.id = "bot"
        async with grpc.aio.insecure_channel(target) as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            d = await stub.Evaluate(request, metadata=(("authorization", "Bearer bot"),))
        assert d.outcome == pb.common.OUTCOME_REQUIRE_REVIEW
        _, msg = await asyncio.to_thread(inbox.next)
        token = link_of(msg)[1]

        async with httpx.AsyncClient(timeout=60) as client:
            calls = [
                client.post(f"http://{http}/email/redeem", json={"token": token})
                for _ in range(REDEEMS)
            ]
            answers = await asyncio.gather(*calls)
        statuses = Counter(r.status_code for r in answers)
        assert statuses == {200: 1, 401: REDEEMS - 1}, statuses
        assert all("already used" in r.json()["error"] for r in answers if r.status_code == 401)
        # Both processes answered some of them: the refusals are not one process's memory.
        answered = await _logged(server, REDEEMS)
        assert {e["worker"] for e in answered} == {0, 1}, Counter(e["worker"] for e in answered)


async def _logged(server: Server, n: int) -> list[dict]:
    """The first `n` redeem events the workers logged (waiting for their lines to arrive)."""
    while len(found := [e for e in server.lines if e.get("event") in ANSWERS]) < n:
        await server.expect(lambda e: e.get("event") in ANSWERS, after=len(server.lines))
    return found[:n]
