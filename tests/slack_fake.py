"""A local fake of the Slack Web API methods Signoff calls, and requests signed as Slack signs
them: the tests of the Slack app never reach Slack."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "users.info")


class FakeSlack:
    """Records every Web API call; answers as Slack does for the methods Signoff uses."""

    def __init__(self, emails: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.emails = emails or {}
        # Called with (method, data) before a call is answered, outside the lock: a test
        # makes something happen while Signoff waits for Slack.
        self.before_reply: Callable[[str, dict[str, Any]], None] | None = None
        self._cond = threading.Condition()
        self._ts = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                data = json.loads(body) if body else {}
                self._answer(data)

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                self._answer({k: v[0] for k, v in query.items()})

            def _answer(self, data: dict[str, Any]) -> None:
                method = urlsplit(self.path).path.rsplit("/", 1)[-1]
                if fake.before_reply is not None:
                    fake.before_reply(method, data)
                reply = fake._reply(method, data, dict(self.headers))
                out = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeSlack:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _reply(self, method: str, data: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        with self._cond:
            self.calls.append((method, data, headers))
            self._cond.notify_all()
            if method == "chat.postMessage":
                self._ts += 1
                return {"ok": True, "channel": data["channel"], "ts": f"1700000000.{self._ts:06d}"}
            if method == "users.info":
                email = self.emails.get(data.get("user", ""))
                if email is None:
                    return {"ok": False, "error": "user_not_found"}
                return {"ok": True, "user": {"id": data["user"], "profile": {"email": email}}}
            if method in METHODS:
                return {"ok": True}
            return {"ok": False, "error": "unknown_method"}

    def wait(self, method: str, n: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        """The first `n` calls of `method`, once they arrived (a condition, not a sleep)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.of(method)) >= n, timeout=timeout)
            if not ok:
                raise AssertionError(f"{method}: {len(self.of(method))} calls, wanted {n}")
            return self.of(method)[:n]

    def of(self, method: str) -> list[dict[str, Any]]:
        """The calls of `method` so far."""
        return [data for m, data, _ in self.calls if m == method]


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends: `v0=` HMAC-SHA256 of `v0:<timestamp>:<body>` (written here
    from Slack's documentation, not with slack_sdk, so the test does not mirror the code)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def form(payload: dict[str, Any]) -> bytes:
    """An interactivity request body: the payload as JSON in the form field `payload`."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    """The button `action_id` of a posted message's actions block."""
    for block in message["blocks"]:
        for element in block.get("elements", ()):
            if element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no button {action_id} in the message")


def press(
    message: dict[str, Any], ts: str, user: str, action_id: str, team: str = "T0SIGNOFF", n: int = 0
) -> dict[str, Any]:
    """The block_actions payload Slack sends when `user` presses a button of `message`."""
    b = button(message, action_id)
    return {
        "type": "block_actions",
        "team": {"id": team, "domain": "example"},
        "user": {"id": user, "username": user.lower(), "team_id": team},
        "api_app_id": "A0SIGNOFF",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": message["channel"],
            "is_ephemeral": False,
        },
        "trigger_id": f"{1000 + n}.{abs(hash((ts, user, action_id, n)))}.abc",
        "channel": {"id": message["channel"], "name": "finance-reviews"},
        "message": {
            "type": "message",
            "ts": ts,
            "text": message["text"],
            "blocks": message["blocks"],
        },
        "response_url": "https://hooks.slack.invalid/actions/T0/1/x",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "b",
                "text": b["text"],
                "value": b.get("value"),
                "type": "button",
                "action_ts": "1700000001.000100",
            }
        ],
    }


def submit_view(
    view: dict[str, Any], user: str, comment: str, team: str = "T0SIGNOFF"
) -> dict[str, Any]:
    """The view_submission payload Slack sends when `user` submits the opened modal."""
    return {
        "type": "view_submission",
        "team": {"id": team, "domain": "example"},
        "user": {"id": user, "username": user.lower(), "team_id": team},
        "api_app_id": "A0SIGNOFF",
        "trigger_id": f"2000.{abs(hash((user, comment)))}.def",
        "view": {
            "id": "V0MODAL",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "hash": "1700000002.abc",
            "state": {
                "values": {"comment": {"comment": {"type": "plain_text_input", "value": comment}}}
            },
        },
    }
