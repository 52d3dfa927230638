"""A TCP relay in front of PostgreSQL that counts what clients send, by protocol message.

It measures the client side of the wire without touching the client: a statement sent is an
Execute ('E') or a simple Query ('Q'); a point where the client waits for the server is a
Sync ('S'), a Flush ('H') or a simple Query. psycopg ends a pipeline with a Sync and a Flush
sent together, which is one wait: `round_trips` counts a Flush that directly follows a Sync
in the stream as part of it. Used by the storage tests and bench/postgres_writes.py.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import struct
import urllib.parse

# Untyped first messages: SSLRequest and GSSENCRequest get a one-byte answer and are
# followed by another untyped message (the StartupMessage); a CancelRequest ends the session.
_NEGOTIATE = {80877103, 80877104}


class WireCounter:
    """Relay 127.0.0.1:<port> to the server of `url`; count the messages clients send."""

    def __init__(self, url: str) -> None:
        self._target = urllib.parse.urlsplit(url)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.messages: collections.Counter[str] = collections.Counter()
        self.round_trips = 0

    async def start(self) -> None:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)

    async def close(self) -> None:
        """Stop listening and cut the relayed connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    def url(self) -> str:
        """The URL of the relay: the target URL with this host and port, without TLS."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        user = self._target.username or ""
        netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
        query = urllib.parse.parse_qsl(self._target.query)
        query += [("sslmode", "disable"), ("gssencmode", "disable")]
        return urllib.parse.urlunsplit(
            self._target._replace(netloc=netloc, query=urllib.parse.urlencode(query))
        )

    def reset(self) -> None:
        """Forget the counts so far."""
        self.messages.clear()
        self.round_trips = 0

    @property
    def statements(self) -> int:
        """Statements sent: extended-protocol Executes and simple Queries."""
        return self.messages["E"] + self.messages["Q"]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self._target.hostname or "127.0.0.1", self._target.port or 5432
        up_reader, up_writer = await asyncio.open_connection(host, port)
        tasks = [
            asyncio.ensure_future(self._client_to_server(reader, up_writer)),
            asyncio.ensure_future(_pipe(up_reader, writer)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                self._tasks.discard(task)
            for w in (writer, up_writer):
                w.close()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        untyped = True
        previous = ""
        while True:
            if untyped:
                head = await reader.readexactly(8)
                length, code = struct.unpack("!ii", head)
                body = await reader.readexactly(length - 8)
                writer.write(head + body)
                untyped = code in _NEGOTIATE
                continue
            head = await reader.readexactly(5)
            kind, length = chr(head[0]), struct.unpack("!i", head[1:])[0]
            body = await reader.readexactly(length - 4)
            writer.write(head + body)
            self.messages[kind] += 1
            if kind in "SQ" or (kind == "H" and previous != "S"):
                self.round_trips += 1
            previous = kind
            await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
