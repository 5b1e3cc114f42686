"""A TCP proxy the harness controls: cut the network, or drop a connection right after a commit.

``Proxy`` relays bytes between its clients and one target (a TCP address, or a PostgreSQL unix
socket folder). ``cut`` is a network cut: every open connection is closed and new ones are
refused until ``restore``. ``drop_after_commit`` is the ambiguous commit of PostgreSQL: the
client's COMMIT reaches the server, the server commits and answers, and the client never sees
the answer: its connection breaks instead, so it cannot tell whether its write happened.

Connections are relayed as opaque bytes, except PostgreSQL ones (told by their startup packet):
those are read message by message, so that the proxy knows when the server committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from dataclasses import dataclass, field

__all__ = ["Proxy"]

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_PROTOCOL_3 = 196608
_COMMIT = re.compile(rb"^\s*(COMMIT|END)\b", re.IGNORECASE)
_CHUNK = 65536


@dataclass
class _Armed:
    """How many commits to drop, and which (``marker``: one whose transaction ran such a statement)."""

    count: int = 0
    marker: bytes | None = None
    dropped: int = 0


@dataclass
class _Postgres:
    """What one PostgreSQL connection is doing, read from the messages each way.

    The server answers every ``Sync`` and every simple ``Query`` with one ``ReadyForQuery``
    ('Z'), in order, whose status byte says whether a transaction is still open ('T', 'E')
    or not ('I'). So the n-th 'Z' closes the answer to the n-th sync point, and a sync point
    whose 'Z' says 'I' without an error before it is where the server committed.
    """

    startup: bool = True
    """The client's next message has no type byte (a startup packet or an SSL request)."""
    single_bytes: int = 0
    """Bytes the server answers to SSL/GSS requests, before its typed messages."""
    opaque: bool = False
    """TLS was negotiated: nothing more can be read, bytes are relayed as they come."""
    statements: dict[bytes, bytes] = field(default_factory=dict)
    """Prepared statements by name (asyncpg prepares once, then only binds the name)."""
    syncs_sent: int = 0
    answered: int = 0
    batch_matches: bool = False
    touched: bool = False
    """The open transaction ran a statement with the armed marker."""
    watched: set[int] = field(default_factory=set)
    """Sync points whose answer is held back until it shows whether the server committed."""


class _Framer:
    """Splits a byte stream into PostgreSQL messages (type byte, int32 length, body)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes, *, untyped: bool) -> tuple[bytes, bytes] | None:
        """Add ``data``; then take one whole message as (type, raw bytes), or ``None``."""
        self._buffer += data
        return self.take(untyped=untyped)

    def take(self, *, untyped: bool) -> tuple[bytes, bytes] | None:
        head = 0 if untyped else 1
        if len(self._buffer) < head + 4:
            return None
        (length,) = struct.unpack_from("!i", self._buffer, head)
        end = head + length
        if len(self._buffer) < end:
            return None
        raw = bytes(self._buffer[:end])
        del self._buffer[:end]
        return (b"" if untyped else raw[:1]), raw

    def rest(self) -> bytes:
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


class _Connection:
    """One client's connection and its twin to the target, relayed both ways."""

    def __init__(
        self,
        proxy: Proxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self._proxy = proxy
        self._client_reader, self._client_writer = client
        self._server_reader, self._server_writer = server
        self._pg: _Postgres | None = None
        self._first = True
        self._to_server = _Framer()
        self._to_client = _Framer()
        self._held = bytearray()
        self._held_error = False

    async def relay(self) -> None:
        """Relay until either side closes, or the proxy closes the connection."""
        upstream = asyncio.create_task(self._upstream())
        downstream = asyncio.create_task(self._downstream())
        try:
            await asyncio.wait((upstream, downstream), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.close()
            upstream.cancel()
            downstream.cancel()
            # Their errors (a reset, the abort above) are how relaying ends, not news.
            await asyncio.gather(upstream, downstream, return_exceptions=True)

    def close(self) -> None:
        """Break both sides at once; ``abort`` so no buffered byte (say, a commit's answer) gets out."""
        self._client_writer.transport.abort()
        self._server_writer.transport.abort()

    async def _upstream(self) -> None:
        while data := await self._client_reader.read(_CHUNK):
            if self._first:
                self._first = False
                self._pg = _Postgres() if _looks_like_postgres(data) else None
            if self._pg is not None and not self._pg.opaque:
                self._read_client(self._pg, data)
            self._server_writer.write(data)
            await self._server_writer.drain()

    async def _downstream(self) -> None:
        while data := await self._server_reader.read(_CHUNK):
            pg = self._pg
            if pg is None or pg.opaque:
                self._client_writer.write(data)
            elif not self._read_server(pg, data):
                return  # a commit went through and its answer is dropped: the connection breaks
            await self._client_writer.drain()

    def _read_client(self, pg: _Postgres, data: bytes) -> None:
        message = self._to_server.feed(data, untyped=pg.startup)
        while message is not None:
            kind, raw = message
            if pg.startup:
                (code,) = struct.unpack_from("!i", raw, 4)
                if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                    pg.single_bytes += 1
                elif code == _PROTOCOL_3:
                    pg.startup = False
                    pg.syncs_sent += 1  # the server ends the login with a ReadyForQuery too
            else:
                self._client_message(pg, kind, raw[5:])
            message = self._to_server.take(untyped=pg.startup)

    def _client_message(self, pg: _Postgres, kind: bytes, body: bytes) -> None:
        armed = self._proxy._armed
        if kind == b"P":  # Parse: name, query
            name, _, rest = body.partition(b"\0")
            pg.statements[name] = rest.partition(b"\0")[0]
        elif kind == b"B":  # Bind: portal, statement
            statement = body.split(b"\0", 2)[1]
            pg.batch_matches |= _matches(pg.statements.get(statement, b""), armed.marker, pg.touched)
        elif kind in (b"S", b"Q"):  # a sync point: the server answers it with one ReadyForQuery
            pg.syncs_sent += 1
            if kind == b"Q":
                pg.batch_matches |= _matches(body.rstrip(b"\0"), armed.marker, pg.touched)
            if armed.count > 0 and (pg.batch_matches or pg.touched):
                pg.watched.add(pg.syncs_sent)
            pg.batch_matches = False

    def _read_server(self, pg: _Postgres, data: bytes) -> bool:
        """Relay the server's messages, holding back a watched answer; ``False`` to break."""
        if pg.single_bytes:
            pg.single_bytes -= 1
            reply, data = data[:1], data[1:]
            self._client_writer.write(reply)
            if reply in (b"S", b"G"):  # encrypted from here on: relay blindly
                pg.opaque = True
                self._client_writer.write(self._to_client.rest() + data)
                return True
        message = self._to_client.feed(data, untyped=False)
        while message is not None:
            kind, raw = message
            if pg.answered + 1 not in pg.watched:
                self._client_writer.write(raw)
            else:
                self._held += raw
                self._held_error |= kind == b"E"
            if kind == b"Z":
                pg.answered += 1
                if not self._answered(pg, raw[5:6]):
                    return False
            message = self._to_client.take(untyped=False)
        return True

    def _answered(self, pg: _Postgres, status: bytes) -> bool:
        """A sync point is answered: drop the connection if that answer tells of an armed commit."""
        watched = pg.answered in pg.watched
        pg.watched.discard(pg.answered)
        armed = self._proxy._armed
        if status == b"I":
            committed = watched and not self._held_error and armed.count > 0
            pg.touched = False
            if committed:
                armed.count -= 1
                armed.dropped += 1
                self._held.clear()
                return False
        elif armed.marker is not None and watched:
            pg.touched = True  # in a transaction that ran the marked statement: watch its end
        self._client_writer.write(bytes(self._held))
        self._held.clear()
        self._held_error = False
        return True


def _matches(query: bytes, marker: bytes | None, touched: bool) -> bool:
    """Whether a statement is one the armed drop waits for: COMMIT, or one containing the marker."""
    if marker is None:
        return bool(_COMMIT.match(query))
    return marker in query or (touched and bool(_COMMIT.match(query)))


def _looks_like_postgres(data: bytes) -> bool:
    """A PostgreSQL client starts with an untyped packet: int32 length, then a protocol or request code."""
    if len(data) < 8:
        return False
    length, code = struct.unpack_from("!ii", data)
    return 8 <= length <= 10_000 and code in (_PROTOCOL_3, _SSL_REQUEST, _GSSENC_REQUEST)


class Proxy:
    """Relays TCP connections from ``listen_host:listen_port`` to the target, and breaks them on demand.

    Args:
        listen_host: The address to listen on.
        listen_port: The port to listen on; 0 picks a free one (``port`` tells which).
        target_host: The target's address, or a folder holding PostgreSQL's unix socket
            (a path, as libpq takes it: the socket is ``<folder>/.s.PGSQL.<target_port>``).
        target_port: The target's port.
    """

    def __init__(self, listen_host: str, listen_port: int, target_host: str, target_port: int) -> None:
        self.listen_host = listen_host
        self.port = listen_port
        """The port it listens on (the one picked, after ``start`` with 0)."""
        self.target_host = target_host
        self.target_port = target_port
        self._server: asyncio.Server | None = None
        self._open: set[_Connection] = set()
        self._relays: set[asyncio.Task[None]] = set()
        self._refusing = False
        self._armed = _Armed()

    @property
    def dropped(self) -> int:
        """How many commits the proxy dropped the answer of, so far."""
        return self._armed.dropped

    @property
    def armed(self) -> int:
        """How many commits are still to be dropped."""
        return self._armed.count

    async def start(self) -> None:
        """Listen; ``port`` is known once this returns."""
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        """Close every open connection, and refuse new ones until ``restore``."""
        self._refusing = True
        for connection in list(self._open):
            connection.close()

    def restore(self) -> None:
        """Accept and relay connections again."""
        self._refusing = False

    def drop_after_commit(self, count: int = 1, *, marker: str | None = None) -> None:
        """Drop the connection of the next ``count`` PostgreSQL commits, once the server committed.

        Without ``marker``: any ``COMMIT``. With it, only a commit of a transaction that ran a
        statement containing ``marker``, or of such a statement run on its own: asyncpg runs a
        lone statement in an implicit transaction, which PostgreSQL commits at its ``Sync``,
        with no COMMIT message at all (chronik's ``commit_job`` outside a transaction).
        """
        self._armed.count = count
        self._armed.marker = None if marker is None else marker.encode()

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        self._refusing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._open):
            connection.close()
        # Not cancelled: the aborts above end every relay, and asyncio's server reports a
        # cancelled connection callback as an error.
        await asyncio.gather(*self._relays, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            # Accepted and closed at once, rather than not listening: the port stays ours, and
            # the client fails at once (as on a reset) instead of waiting out its timeout.
            writer.transport.abort()
            return
        try:
            if self.target_host.startswith("/"):
                server = await asyncio.open_unix_connection(f"{self.target_host}/.s.PGSQL.{self.target_port}")
            else:
                server = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        connection = _Connection(self, (reader, writer), server)
        self._open.add(connection)
        relay = asyncio.current_task()
        assert relay is not None
        self._relays.add(relay)
        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await connection.relay()
        finally:
            self._open.discard(connection)
            self._relays.discard(relay)
