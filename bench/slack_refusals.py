"""What a request to /slack/interactivity costs the server before it knows Slack sent it.

A real server (SQLite, in this process) with the Slack app configured against a dead Web
API; one keep-alive aiohttp client sends, per round and in alternating order: GET /healthz
(the floor: the same HTTP path doing nothing), a 1 KiB and a 60 KiB body with a wrong
signature (read, then one HMAC-SHA256), a body announced over the 64 KiB limit (refused on
its Content-Length, never read), and a properly signed request sent again (a replay: HMAC,
form and JSON parse, the replay memory). Medians and minimums of per-request µs.

    python bench/slack_refusals.py [--rounds 15] [--per-round 200]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from common import median, write

from signoff.serving.server import start
from signoff.settings.model import Settings

SECRET = "bench-secret"


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    ts = str(int(time.time()))
    mac = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": "v0=" + mac.hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def _body(size: int) -> bytes:
    payload = {"type": "block_actions", "trigger_id": "1.2.3", "pad": "x" * (size - 120)}
    return urlencode({"payload": json.dumps(payload)}).encode()


async def main(rounds: int, per_round: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "policies").mkdir()
    settings = Settings(
        policies=tmp / "policies",
        db=f"sqlite:///{tmp / 'signoff.db'}",
        state_dir=tmp / "state",
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        shutdown_grace=0,
        notify={
            "slack": {
                "bot_token": "xoxb-bench",
                "signing_secret": SECRET,
                "console_url": "https://signoff.example.com",
                "api_url": "http://127.0.0.1:9/api/",
            }
        },
    )
    running = await start(settings)
    try:
        await _measure(running.http_port, rounds, per_round)
    finally:
        await running.stop(0)


async def _measure(port: int | None, rounds: int, per_round: int) -> None:
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/slack/interactivity"
    small, large = _body(1024), _body(60 * 1024)
    replay = _body(1024)
    replay_headers = _signed(replay)
    cases = {
        "healthz (floor)": ("GET", f"{base}/healthz", b"", {}, 200),
        "wrong signature, 1 KiB": ("POST", url, small, _signed(small, "wrong"), 401),
        "wrong signature, 60 KiB": ("POST", url, large, _signed(large, "wrong"), 401),
        "over the limit (Content-Length)": ("POST", url, b"x" * (70 * 1024), {}, 413),
        "replay of a signed request": ("POST", url, replay, replay_headers, 409),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=replay, headers=replay_headers) as first:
            assert first.status == 200, first.status  # remembered: later sends are replays
        order = list(cases)
        for r in range(rounds):
            for name in order if r % 2 == 0 else reversed(order):
                method, target, body, headers, status = cases[name]
                t0 = time.perf_counter()
                for _ in range(per_round):
                    async with session.request(method, target, data=body, headers=headers) as resp:
                        await resp.read()
                        assert resp.status == status, (name, resp.status)
                times[name].append((time.perf_counter() - t0) / per_round * 1e6)
    rows = {name: {"median_us": median(ts), "min_us": min(ts)} for name, ts in times.items()}
    for name, row in rows.items():
        print(f"{name:36} median {row['median_us']:8.1f} µs   min {row['min_us']:8.1f} µs")
    write("slack_refusals", {"rounds": rounds, "per_round": per_round, "cases": rows})


if __name__ == "__main__":
    logging.disable(logging.WARNING)  # start-up warnings (dev mode) are not the measurement
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.per_round))
