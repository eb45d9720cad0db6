"""NatsStream, NatsProducer, NatsConsumer: kaelix streams held by NATS JetStream.

A ``NatsStream`` is one JetStream stream. Each message is one kaelix frame (docs/wire-format.md)
as the NATS message body, published on the subject ``<prefix>.<stream>.<partition>.<producer
id>`` with the header ``Nats-Msg-Id: <producer id>.<partition>.<sequence>``, so that JetStream
drops a retried publish it stored already (see docs/connect.md). Producers wait for JetStream's
publish acknowledgement of every message; consumers are pull consumers with explicit acks.

Runs its nats-py client on a private event loop (``_loop.PrivateLoop``). Imports the kaelix
API and, lazily, nats-py; never the bench or the monitor.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias, TypeVar

from kaelix._batch import MessageBatch
from kaelix._codec import DecodeError, FrameTooLarge, Message, decode, encode
from kaelix._stream import Receipts, _add_run, _timeout, partition_for
from kaelix.connect.nats._loop import PrivateLoop, require_nats
from kaelix.errors import ConnectError, SendTimeout, StreamClosed, StreamError, StreamNotFound

__all__ = ["NatsConsumer", "NatsProducer", "NatsStream"]

T = TypeVar("T")
Start: TypeAlias = Literal["earliest", "latest"]
AckMode: TypeAlias = Literal["auto", "manual"]
Storage: TypeAlias = Literal["file", "memory"]

MSG_ID: Final = "Nats-Msg-Id"
"""The NATS header JetStream deduplicates publishes by."""

FORMAT: Final = "kaelix-frame/1"
"""What a kaelix-made stream's metadata says its message bodies are."""

_META_PARTITIONS: Final = "kaelix.partitions"
_META_FORMAT: Final = "kaelix.format"
_NAME_RULE: Final = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")
_PREFIX_RULE: Final = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\Z")
_MAX_PARTITIONS: Final = 1024
_FETCH_SLICE: Final = 2.0  # a pull request lives at most this long (then another is made)
_MIN_FETCH: Final = 0.005  # a poll with less time left than this asks with no_wait
_STATUS: Final = "Status"  # the header of a pull request's status replies
_UNSET: Any = object()
_WINDOW: Final = 2048  # publishes a producer keeps in flight: up to two windows


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not _NAME_RULE.match(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: JetStream names take 1 to 128 letters, digits, "
            f"'-' or '_' (no '.', spaces or wildcards)"
        )
    return value


def _positive_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{what} must be > 0 seconds, got {value!r}")
    return float(value)


def _count(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}, got {value}")
    return value


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


class _Errors:
    """nats-py's exception classes, sorted by what kaelix does about them."""

    def __init__(self, nats: Any) -> None:
        self.closed = (nats.errors.ConnectionClosedError,)
        self.api = nats.js.errors.APIError
        self.not_found = nats.js.errors.NotFoundError
        # Worth another try: no stream leader (an election), a full outbound buffer while
        # reconnecting, too many publishes in flight, a timeout.
        self.temporary = (
            asyncio.TimeoutError,
            nats.errors.TimeoutError,
            nats.js.errors.NoStreamResponseError,
            nats.js.errors.ServiceUnavailableError,
            nats.js.errors.TooManyStalledMsgsError,
            nats.errors.OutboundBufferLimitError,
            nats.errors.NoRespondersError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.StaleConnectionError,
        )

    def is_temporary(self, exc: BaseException) -> bool:
        if isinstance(exc, self.temporary):
            return True
        # 503: no JetStream leader right now; 408/409: a request overtaken by a leader change.
        return isinstance(exc, self.api) and getattr(exc, "code", None) in (408, 409, 503)


class NatsStream:
    """A kaelix stream held by a NATS JetStream stream: messages sent here are stored (and
    replicated) by the NATS servers, and consumers on any machine that reaches them receive
    them.

    Connects in the constructor, and creates the JetStream stream if it does not exist
    (unless ``create=False``); an existing one is used as it is (its partitions come from
    its metadata).

    Args:
        name: the JetStream stream's name: 1 to 128 letters, digits, ``-`` or ``_``.
        servers: a NATS URL or a list of them (a client fails over between them).
        partitions: how many partitions (1 to 1024): a subject each. None: the existing
            stream's, or 1 for a new one. Given for an existing stream, it must match.
        replicas: copies JetStream keeps of each message (1 to 5; 3 survives a node down).
        storage: ``"file"`` or ``"memory"``.
        create: create the stream if it does not exist (else ``StreamNotFound``).
        duplicate_window: seconds JetStream remembers message ids to drop retried publishes
            (the idempotence window; retries within a send's timeout fall inside it).
        max_age: seconds a message is kept (None: until ``max_bytes``, or for ever).
        max_bytes: bytes the stream keeps, oldest dropped first (None: no limit).
        subject_prefix: the first tokens of every subject (``"kaelix"``).
        connect_timeout: seconds to reach a server at first, then to make the stream.
        request_timeout: seconds to wait for one acknowledgement before publishing again.
        send_timeout: seconds a send keeps retrying by default (None: no limit).
        connect_options: more keyword arguments for ``nats.connect`` (credentials, TLS).

    Raises:
        ConnectError: no server answered within ``connect_timeout``, or it has no JetStream.
        StreamNotFound: ``create=False`` and there is no such stream.
        StreamError: the stream exists but was not made by kaelix, or has other partitions.
        ImportError: nats-py is not installed (``pip install "kaelix[nats]"``).
    """

    def __init__(
        self,
        name: str,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        partitions: int | None = None,
        replicas: int = 1,
        storage: Storage = "file",
        create: bool = True,
        duplicate_window: float = 120.0,
        max_age: float | None = None,
        max_bytes: int | None = None,
        subject_prefix: str = "kaelix",
        connect_timeout: float = 5.0,
        request_timeout: float = 5.0,
        send_timeout: float | None = 60.0,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._name = _check_name(name, "stream name")
        if isinstance(servers, str):
            servers = [servers]
        if not isinstance(servers, Sequence) or not servers:
            raise TypeError("servers must be a NATS URL or a non-empty list of them")
        for server in servers:
            if not isinstance(server, str):
                raise TypeError(f"a server must be a URL str, got {type(server).__name__}")
        self._servers = list(servers)
        if partitions is not None:
            _count(partitions, "partitions", 1, _MAX_PARTITIONS)
        _count(replicas, "replicas", 1, 5)
        if storage not in ("file", "memory"):
            raise ValueError(f"storage must be 'file' or 'memory', got {storage!r}")
        if not isinstance(subject_prefix, str) or not _PREFIX_RULE.match(subject_prefix):
            raise ValueError(
                f"subject_prefix {subject_prefix!r} must be dot-separated tokens of letters, "
                f"digits, '-' or '_'"
            )
        self._prefix = f"{subject_prefix}.{self._name}"
        self._replicas = replicas
        self._connect_timeout = _positive_number(connect_timeout, "connect_timeout")
        self._request_timeout = _positive_number(request_timeout, "request_timeout")
        self._send_timeout = _timeout(send_timeout, "send_timeout")
        window = _positive_number(duplicate_window, "duplicate_window")
        if max_age is not None:
            max_age = _positive_number(max_age, "max_age")
        if max_bytes is not None:
            _count(max_bytes, "max_bytes", 1, 1 << 62)
        self._closed = False
        self._consumers: list[NatsConsumer] = []
        self._producers: list[NatsProducer] = []
        self._reconnects = 0
        self._relay: _Publisher | None = None
        self._last_error: BaseException | None = None
        nats = require_nats()
        self._nats = nats
        self._errors = _Errors(nats)
        self._loop = PrivateLoop(f"kaelix-nats-{self._name}")
        self._nc: Any = None
        self._js: Any = None
        self._partitions = 0
        try:
            self._loop.run(
                self._open(
                    partitions,
                    storage,
                    create,
                    window,
                    max_age,
                    max_bytes,
                    dict(connect_options or {}),
                )
            )
        except BaseException:
            self._closed = True
            if self._nc is not None:
                self._loop.run(self._close_connection())
            self._loop.close()
            raise

    # -- connecting --

    async def _open(
        self,
        partitions: int | None,
        storage: Storage,
        create: bool,
        window: float,
        max_age: float | None,
        max_bytes: int | None,
        options: dict[str, Any],
    ) -> None:
        nats = self._nats
        deadline = time.monotonic() + self._connect_timeout

        async def on_error(exc: Exception) -> None:
            self._last_error = exc

        async def on_reconnect() -> None:
            self._reconnects += 1

        settings: dict[str, Any] = {
            "servers": self._servers,
            "name": f"kaelix:{self._name}",
            "connect_timeout": max(1, round(self._connect_timeout)),
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,  # while open, keep trying: sends time out instead
            "reconnect_time_wait": 0.25,
            "error_cb": on_error,
            "reconnected_cb": on_reconnect,
        }
        settings.update(options)
        try:
            self._nc = await asyncio.wait_for(nats.connect(**settings), self._connect_timeout)
        except (asyncio.TimeoutError, OSError, nats.errors.Error) as exc:
            cause = self._last_error or exc
            raise ConnectError(
                f"could not connect to NATS at {', '.join(self._servers)} within "
                f"{self._connect_timeout:g} s: {type(cause).__name__}: {cause}"
            ) from None
        # Producers bound what they keep in flight themselves (with a timeout: nats-py's
        # own bound waits on a semaphore that a dead server never releases).
        self._js = self._nc.jetstream(
            timeout=self._request_timeout, publish_async_max_pending=1 << 30
        )
        api = nats.js.api
        while True:
            try:
                info = await self._js.stream_info(self._name)
                break
            except self._errors.not_found:
                if not create:
                    raise StreamNotFound(f"no JetStream stream named {self._name!r}") from None
            except Exception as exc:
                if isinstance(exc, self._errors.api) and not self._errors.is_temporary(exc):
                    raise StreamError(
                        f"JetStream refused to describe stream {self._name!r}: {exc}"
                    ) from None
                if not self._errors.is_temporary(exc) or time.monotonic() > deadline:
                    raise self._no_jetstream(exc) from None
                await asyncio.sleep(0.1)
                continue
            config = api.StreamConfig(
                name=self._name,
                description="a kaelix stream: each message body is one kaelix frame",
                subjects=[f"{self._prefix}.*.*"],
                num_replicas=self._replicas,
                storage=api.StorageType.FILE if storage == "file" else api.StorageType.MEMORY,
                duplicate_window=window,
                max_age=max_age,
                max_bytes=max_bytes,
                metadata={_META_PARTITIONS: str(partitions or 1), _META_FORMAT: FORMAT},
            )
            try:
                info = await self._js.add_stream(config)
                break
            except self._errors.api as exc:
                # Another process may have made it meanwhile (then stream_info finds it);
                # a cluster still electing its leaders answers 503 for a moment.
                if time.monotonic() > deadline:
                    raise StreamError(
                        f"JetStream refused to create {self._name!r}: {exc}"
                    ) from None
                await asyncio.sleep(0.1)
            except Exception as exc:
                if not self._errors.is_temporary(exc) or time.monotonic() > deadline:
                    raise self._no_jetstream(exc) from None
                await asyncio.sleep(0.1)
        metadata = info.config.metadata or {}
        if metadata.get(_META_FORMAT) != FORMAT or _META_PARTITIONS not in metadata:
            raise StreamError(
                f"JetStream stream {self._name!r} was not made by kaelix (its metadata has no "
                f"{_META_FORMAT}={FORMAT!r}); pick another name"
            )
        found = int(metadata[_META_PARTITIONS])
        if partitions is not None and partitions != found:
            raise StreamError(
                f"JetStream stream {self._name!r} has {found} partition(s), not {partitions}; "
                f"pass partitions={found} or None"
            )
        self._partitions = found

    def _no_jetstream(self, exc: BaseException) -> ConnectError:
        return ConnectError(
            f"no JetStream answer from NATS at {', '.join(self._servers)} within "
            f"{self._connect_timeout:g} s ({type(exc).__name__}: {exc}); is JetStream enabled "
            f"(nats-server -js)?"
        )

    async def _close_connection(self) -> None:
        nc = self._nc
        if nc is not None and not nc.is_closed:
            # Flush what is pending (acknowledgements); a dead connection has nothing left
            # to flush and may fail to close cleanly: close() must not raise for it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.flush(), self._request_timeout)
            with contextlib.suppress(Exception):
                await nc.close()

    # -- calls from other threads --

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise StreamClosed(f"NATS stream {self._name!r} is closed")
        try:
            return self._loop.run(coro)
        except (concurrent.futures.CancelledError, RuntimeError):
            if self._closed:  # closed by another thread while the call ran
                raise StreamClosed(f"NATS stream {self._name!r} is closed") from None
            raise

    async def _call_async(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise StreamClosed(f"NATS stream {self._name!r} is closed")
        try:
            return await self._loop.run_async(coro)
        except (asyncio.CancelledError, RuntimeError):
            if self._closed:
                raise StreamClosed(f"NATS stream {self._name!r} is closed") from None
            raise

    def _connection_lost(self) -> ConnectError:
        return ConnectError(
            f"the connection to NATS at {', '.join(self._servers)} is closed"
            + (f" (last error: {self._last_error})" if self._last_error else "")
        )

    # -- attributes --

    @property
    def name(self) -> str:
        """The JetStream stream's name."""
        return self._name

    @property
    def partitions(self) -> int:
        """How many partitions (subjects) the stream has."""
        return self._partitions

    @property
    def replicas(self) -> int:
        """The replicas asked for when this handle was made."""
        return self._replicas

    @property
    def servers(self) -> list[str]:
        """The NATS URLs given."""
        return list(self._servers)

    @property
    def send_timeout(self) -> float | None:
        """How long a send keeps retrying by default, in seconds (None: no limit)."""
        return self._send_timeout

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-established (a server went away)."""
        return self._reconnects

    def subject(self, partition: int, producer_id: int | None = None) -> str:
        """The subject of a partition's messages from one producer, or (``producer_id``
        None) the wildcard subject of the whole partition."""
        p = self._partition_index(partition)
        return f"{self._prefix}.{p}.{'*' if producer_id is None else producer_id}"

    def _partition_index(self, partition: object) -> int:
        if not isinstance(partition, int) or isinstance(partition, bool):
            raise TypeError(f"a partition must be an int, got {type(partition).__name__}")
        if not 0 <= partition < self._partitions:
            raise ValueError(
                f"partition {partition} is out of range: NATS stream {self._name!r} has "
                f"{self._partitions} partition(s), 0 to {self._partitions - 1}"
            )
        return partition

    @property
    def _max_frame(self) -> int:
        """The largest body the server takes, less room for the headers."""
        return int(self._nc.max_payload) - 256

    # -- producers and consumers --

    def producer(self, producer_id: int | None = None) -> NatsProducer:
        """A new producer. Without ``producer_id`` it gets a random 63-bit id, unique in
        practice across processes and machines; with one (the caller's to keep unique),
        it first looks up the last sequence that id stored in each partition and goes on
        from there, so a restarted producer never reuses a sequence number (which
        JetStream's deduplication would otherwise drop as a retry).

        Raises:
            StreamClosed: the stream is closed.
        """
        if self._closed:
            raise StreamClosed(f"NATS stream {self._name!r} is closed")
        resume = producer_id is not None
        if producer_id is None:
            producer_id = secrets.randbits(63) | 1
        elif not isinstance(producer_id, int) or isinstance(producer_id, bool):
            raise TypeError(f"producer_id must be an int or None, got {type(producer_id).__name__}")
        elif not 0 <= producer_id < 1 << 64:
            raise ValueError(f"producer_id must be between 0 and 2**64 - 1, got {producer_id}")
        producer = NatsProducer(self, producer_id, resume)
        self._producers.append(producer)
        return producer

    def consumer(
        self,
        *,
        group: str | None = None,
        start: Start = "earliest",
        partitions: Iterable[int] | None = None,
        ack: AckMode = "auto",
        ack_wait: float = 30.0,
        max_deliver: int | None = None,
        max_ack_pending: int = 65536,
        prefetch: int = 256,
    ) -> NatsConsumer:
        """A new consumer: a JetStream pull consumer with explicit acknowledgements.

        Args:
            group: a durable consumer's name. Every consumer with this name, in any process
                on any machine, shares its position: each message goes to one of them, and
                the server remembers what was acknowledged across restarts. Without one,
                the consumer is ephemeral: it sees every message of its partitions and is
                deleted when closed.
            start: where a new consumer starts, ``"earliest"`` (the oldest message kept) or
                ``"latest"`` (messages stored from now on). An existing group resumes.
            partitions: read only these partitions.
            ack: ``"auto"``: what a poll returned is acknowledged by the next poll (or
                ``commit()``, or ``close()``); ``"manual"``: only by ``commit()``, and
                ``close()`` hands back what was not committed (redelivered at once).
            ack_wait: seconds the server waits for an acknowledgement before it delivers a
                message again (to this or another member).
            max_deliver: deliveries of one message at most (None: no limit).
            max_ack_pending: messages delivered and not yet acknowledged, at most.
            prefetch: messages ``poll`` fetches at a time (kept here until polled).

        Raises:
            StreamClosed: the stream is closed.
            ConnectError: the server could not be reached.
        """
        if self._closed:
            raise StreamClosed(f"NATS stream {self._name!r} is closed")
        if group is not None:
            _check_name(group, "group")
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        if ack not in ("auto", "manual"):
            raise ValueError(f"ack must be 'auto' or 'manual', got {ack!r}")
        chosen = None
        if partitions is not None:
            chosen = tuple(dict.fromkeys(self._partition_index(p) for p in partitions))
            if not chosen:
                raise ValueError("partitions must name at least one partition")
        consumer = NatsConsumer(
            self,
            group=group,
            start=start,
            partitions=chosen,
            ack=ack,
            ack_wait=_positive_number(ack_wait, "ack_wait"),
            max_deliver=None
            if max_deliver is None
            else _count(max_deliver, "max_deliver", 1, 1 << 31),
            max_ack_pending=_count(max_ack_pending, "max_ack_pending", 1, 1 << 31),
            prefetch=_count(prefetch, "prefetch", 1, 1 << 20),
        )
        self._consumers.append(consumer)
        return consumer

    def forward(self, batch: MessageBatch, *, timeout: float | None = _UNSET) -> int:
        """Publishes the frames of ``batch`` as they are (a relay: each keeps its producer
        id, partition, sequence, timestamp and checksum), each on its partition's subject
        with the message id a ``NatsProducer`` would have given it, so that forwarding the
        same message twice stores it once (within the duplicate window). Returns once every
        frame is acknowledged: how many were forwarded. ``JetStreamSink`` runs on this.

        Raises:
            TypeError: batch is not a MessageBatch.
            ValueError: a frame's partition is not one of this stream's.
            SendTimeout, StreamClosed, StreamError, ConnectError: as for ``send_batch``.
        """
        if not isinstance(batch, MessageBatch):
            raise TypeError(f"batch must be a kaelix.MessageBatch, got {type(batch).__name__}")
        if self._closed:
            raise StreamClosed(f"NATS stream {self._name!r} is closed")
        count = len(batch)
        if not count:
            return 0
        partitions = batch.partition.tolist()
        highest = max(partitions)
        if highest >= self._partitions:
            raise ValueError(
                f"a frame of the batch is in partition {highest}, but NATS stream "
                f"{self._name!r} has {self._partitions} partition(s)"
            )
        limit = self._send_timeout if timeout is _UNSET else _timeout(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        buf = batch.to_bytes()
        offsets = batch.offsets.tolist()
        producers = batch.producer_id.tolist()
        sequences = batch.sequence.tolist()
        prefix = self._prefix
        bodies = [buf[offsets[i] : offsets[i + 1]] for i in range(count)]
        subjects = [f"{prefix}.{p}.{pid}" for p, pid in zip(partitions, producers, strict=True)]
        ids = [f"{pid}.{p}.{s}" for pid, p, s in zip(producers, partitions, sequences, strict=True)]
        if self._relay is None:
            self._relay = _Publisher(self)
        self._call(self._relay.publish(subjects, bodies, ids, deadline))
        return count

    # -- the stream --

    def info(self) -> dict[str, Any]:
        """What the server says of the stream now: ``messages``, ``bytes``,
        ``first_sequence``, ``last_sequence`` (JetStream's stream sequences), ``consumers``,
        ``partitions``, ``replicas`` and the cluster ``leader`` (None on a single server)."""
        return self._call(self._info())

    async def _info(self) -> dict[str, Any]:
        info = await self._js.stream_info(self._name)
        cluster = info.cluster
        return {
            "name": self._name,
            "partitions": self._partitions,
            "messages": info.state.messages,
            "bytes": info.state.bytes,
            "first_sequence": info.state.first_seq,
            "last_sequence": info.state.last_seq,
            "consumers": info.state.consumer_count,
            "replicas": info.config.num_replicas,
            "leader": None if cluster is None else cluster.leader,
        }

    def delete(self) -> None:
        """Deletes the JetStream stream, every message and consumer of it, then closes this
        handle."""
        self._call(self._js.delete_stream(self._name))
        self.close()

    def close(self) -> None:
        """Closes this handle: its consumers (``"auto"``: what they returned is acknowledged;
        what they fetched and did not return is handed back), its producers, then the
        connection (pending acknowledgements are flushed first) and the private loop. The
        JetStream stream and its messages stay on the servers. Harmless twice."""
        if self._closed:
            return
        for consumer in list(self._consumers):
            with contextlib.suppress(
                Exception
            ):  # a consumer that cannot reach the server: the server times out
                consumer.close()
        for producer in self._producers:
            producer._closed = True
        self._closed = True
        try:
            self._loop.run(self._close_connection())
        finally:
            self._loop.close()

    def __enter__(self) -> NatsStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<NatsStream {self._name!r} partitions={self._partitions} "
            f"servers={self._servers}{state}>"
        )


class _Publisher:
    """Publishes frames with their message ids and waits for JetStream to acknowledge each,
    publishing again (the same id, so a copy stored already is dropped by the server) what
    was not acknowledged within the request timeout, until the deadline."""

    def __init__(self, stream: NatsStream) -> None:
        self._stream = stream
        self._order: asyncio.Lock | None = None  # made on the private loop, at first use
        self.duplicates = 0

    def _lock(self) -> asyncio.Lock:
        if self._order is None:
            self._order = asyncio.Lock()
        return self._order

    async def _round(
        self,
        subjects: Sequence[str],
        bodies: Sequence[bytes],
        ids: Sequence[str],
        indexes: Sequence[int],
        deadline: float | None,
    ) -> tuple[list[tuple[int, asyncio.Future[Any]]], list[int]]:
        """Publishes ``indexes``; returns their futures and those it could not publish now
        (the outbound buffer full while reconnecting, too many in flight). Hold the lock."""
        stream = self._stream
        js = stream._js
        errors = stream._errors
        futures: list[tuple[int, asyncio.Future[Any]]] = []
        try:
            for k, i in enumerate(indexes):
                if k and not k % _WINDOW:
                    # Flow control: at most two windows in flight. Waiting for the older
                    # one (bounded by the request timeout, so a dead server cannot hold the
                    # round) lets the acknowledgements catch up; what is still unanswered
                    # is settled, and published again, by the caller.
                    older = [f for _, f in futures[k - 2 * _WINDOW : k - _WINDOW]]
                    if older:
                        left = _left(deadline)
                        wait = stream._request_timeout if left is None else max(0.0, left)
                        await asyncio.wait(older, timeout=min(wait, stream._request_timeout))
                try:
                    future = await js.publish_async(
                        subjects[i], bodies[i], headers={MSG_ID: ids[i]}
                    )
                except errors.closed:
                    raise stream._connection_lost() from None
                except errors.temporary:
                    return futures, list(indexes[k:])
                futures.append((i, future))
        except BaseException:
            for _, future in futures:
                future.cancel()
            raise
        return futures, []

    async def publish_one(
        self, subject: str, body: bytes, msg_id: str, deadline: float | None
    ) -> None:
        """Publishes one body as a request, again (same id) until acknowledged; raises as
        ``publish`` does."""
        stream = self._stream
        errors = stream._errors
        backoff = 0.05
        while True:
            left = _left(deadline)
            wait = stream._request_timeout if left is None else max(0.001, left)
            try:
                ack = await stream._js.publish(
                    subject,
                    body,
                    timeout=min(wait, stream._request_timeout),
                    headers={MSG_ID: msg_id},
                )
            except errors.closed:
                raise stream._connection_lost() from None
            except Exception as exc:
                if not errors.is_temporary(exc):
                    raise StreamError(
                        f"JetStream refused message {msg_id} on {subject}: {exc}"
                    ) from None
            else:
                if ack.duplicate:
                    self.duplicates += 1
                return
            left = _left(deadline)
            if left is not None and left <= 0:
                raise SendTimeout(
                    f"message {msg_id} to NATS stream {stream._name!r} not acknowledged in "
                    f"time; it may or may not be stored, and its sequence number is not reused",
                    0,
                )
            await asyncio.sleep(backoff if left is None else min(backoff, left))
            backoff = min(backoff * 2, 1.0)

    async def publish(
        self,
        subjects: Sequence[str],
        bodies: Sequence[bytes],
        ids: Sequence[str],
        deadline: float | None,
        *,
        first: tuple[list[tuple[int, asyncio.Future[Any]]], list[int]] | None = None,
    ) -> None:
        """Publishes every body until each is acknowledged; ``first`` is a round the caller
        published already (under the lock, to keep its order with the sequence numbers).

        Raises:
            SendTimeout: some were not acknowledged by the deadline (``sent``: how many
                from the first were).
            StreamError: JetStream refused a message (limits, a deleted stream).
            ConnectError: the connection closed for good.
        """
        stream = self._stream
        errors = stream._errors
        count = len(bodies)
        acked = bytearray(count)
        if first is None:
            async with self._lock():
                first = await self._round(subjects, bodies, ids, range(count), deadline)
        futures, retry = first
        backoff = 0.05
        try:
            while True:
                if futures:
                    left = _left(deadline)
                    wait = stream._request_timeout if left is None else max(0.0, left)
                    await asyncio.wait(
                        [f for _, f in futures], timeout=min(wait, stream._request_timeout)
                    )
                for i, future in futures:
                    if not future.done():
                        future.cancel()
                        retry.append(i)
                    elif future.cancelled():
                        retry.append(i)
                    elif (exc := future.exception()) is None:
                        acked[i] = 1
                        if future.result().duplicate:
                            self.duplicates += 1
                    elif errors.is_temporary(exc):
                        retry.append(i)
                    elif isinstance(exc, errors.closed):
                        raise stream._connection_lost()
                    else:
                        raise StreamError(
                            f"JetStream refused message {ids[i]} on {subjects[i]}: {exc}"
                        )
                futures = []
                if not retry:
                    return
                left = _left(deadline)
                if left is not None and left <= 0:
                    sent = acked.find(0)
                    raise SendTimeout(
                        f"{len(retry)} of {count} message(s) to NATS stream {stream._name!r} "
                        f"not acknowledged in time (the first is {ids[min(retry)]}); they may "
                        f"or may not be stored, and their sequence numbers are not reused",
                        count if sent < 0 else sent,
                    )
                await asyncio.sleep(backoff if left is None else min(backoff, left))
                backoff = min(backoff * 2, 1.0)
                retry.sort()
                async with self._lock():
                    futures, retry = await self._round(subjects, bodies, ids, retry, deadline)
        finally:
            for _, future in futures:
                future.cancel()


class NatsProducer:
    """Sends messages to a ``NatsStream``; made by ``NatsStream.producer()``.

    The same surface as ``kaelix.Producer``: each message gets the producer's id, its
    partition (from the key, round-robin, or given), a sequence per (producer, partition)
    from 0 without gaps, and the wall-clock time of the send; ``send`` and ``send_batch``
    return once JetStream has acknowledged (stored, and replicated to a quorum) every
    message. Thread-safe, and usable from any event loop through the ``*_async`` methods.
    """

    def __init__(self, stream: NatsStream, producer_id: int, resume: bool) -> None:
        self._stream = stream
        self._producer_id = producer_id
        self._publisher = _Publisher(stream)
        self._next = [0] * stream._partitions
        self._known = [not resume] * stream._partitions
        self._rr = 0
        self._closed = False

    @property
    def producer_id(self) -> int:
        """The id every message of this producer carries."""
        return self._producer_id

    @property
    def stream(self) -> NatsStream:
        """The stream this producer sends to."""
        return self._stream

    @property
    def closed(self) -> bool:
        """True once close() (or the stream's) was called."""
        return self._closed

    @property
    def duplicates(self) -> int:
        """Publishes JetStream acknowledged as duplicates: retries of a message it had
        stored already, dropped by its deduplication."""
        return self._publisher.duplicates

    def _check(self) -> None:
        if self._closed:
            raise StreamClosed("this producer is closed")

    def _choose(self, key: bytes | None) -> int:
        n = self._stream._partitions
        if key is not None:
            return partition_for(key, n)
        p = self._rr
        self._rr = p + 1 if p + 1 < n else 0
        return p

    async def _resume(self, partition: int, deadline: float | None) -> None:
        """Continues this producer id's sequence in ``partition`` after the last one stored
        (a direct get of the subject's last message), retrying what is temporary until the
        send's deadline."""
        stream = self._stream
        errors = stream._errors
        subject = stream.subject(partition, self._producer_id)
        while True:
            try:
                raw = await stream._js.get_last_msg(stream._name, subject)
            except errors.not_found:
                self._next[partition] = 0
                break
            except errors.closed:
                raise stream._connection_lost() from None
            except Exception as exc:
                left = _left(deadline)
                if not errors.is_temporary(exc):
                    raise StreamError(
                        f"could not look up the last message on {subject}: {exc}"
                    ) from None
                if left is not None and left <= 0:
                    raise SendTimeout(
                        f"could not look up the last message on {subject} in time: {exc}", 0
                    ) from None
                await asyncio.sleep(0.1 if left is None else min(0.1, left))
            else:
                self._next[partition] = decode(raw.data).sequence + 1
                break
        self._known[partition] = True

    async def _send(
        self,
        payloads: list[Any],
        keys: list[Any] | None,
        headers: Mapping[str, Any] | None,
        partition: int | None,
        limit: float | None,
        one: bool,
    ) -> Receipts:
        self._check()
        stream = self._stream
        deadline = None if limit is None else time.monotonic() + limit
        count = len(payloads)
        async with self._publisher._lock():
            self._check()
            if partition is not None:
                parts = [partition] * count
            elif keys is not None:
                parts = [self._choose(k) for k in keys]
            else:  # send: round-robin; send_batch: the whole batch to the next partition
                parts = (
                    [self._choose(None) for _ in payloads] if one else [self._choose(None)] * count
                )
            for p in set(parts):
                if not self._known[p]:
                    await self._resume(p, deadline)
            sequences = list(self._next)
            messages = []
            runs: list[tuple[int, int, int]] = []
            for i, payload in enumerate(payloads):
                p = parts[i]
                seq = sequences[p]
                sequences[p] = seq + 1
                messages.append(
                    Message(
                        payload,
                        key=None if keys is None else keys[i],
                        headers=headers,
                        partition=p,
                        producer_id=self._producer_id,
                        sequence=seq,
                        timestamp_ns=time.time_ns(),
                    )
                )
                _add_run(runs, p, seq, 1)
            try:
                if count == 1:
                    bodies = [encode(messages[0], max_frame_size=stream._max_frame)]
                else:
                    batch = MessageBatch.from_messages(messages, max_frame_size=stream._max_frame)
                    buf = batch.to_bytes()
                    offsets = batch.offsets.tolist()
                    bodies = [buf[offsets[i] : offsets[i + 1]] for i in range(count)]
            except FrameTooLarge as exc:
                raise FrameTooLarge(
                    f"{exc} (the NATS server takes messages up to {stream._max_frame + 256} "
                    f"bytes: its max_payload)",
                    exc.size,
                    exc.limit,
                ) from None
            # From here the sequences are taken, whatever happens: a message that may have
            # been stored must never share its id with another.
            self._next = sequences
            pid = self._producer_id
            subjects = [f"{stream._prefix}.{p}.{pid}" for p in parts]
            ids = [f"{pid}.{m.partition}.{m.sequence}" for m in messages]
            if count == 1:
                # One message: a request and its reply, the lock held (the next send waits
                # for this acknowledgement anyway), without the pipeline's bookkeeping.
                await self._publisher.publish_one(subjects[0], bodies[0], ids[0], deadline)
                return Receipts(runs)
            first = await self._publisher._round(subjects, bodies, ids, range(count), deadline)
        await self._publisher.publish(subjects, bodies, ids, deadline, first=first)
        return Receipts(runs)

    def _arguments(
        self, payloads: Any, keys: Any, partition: Any, timeout: Any
    ) -> tuple[list[Any], list[Any] | None, int | None, float | None]:
        self._check()
        items = payloads if type(payloads) is list else list(payloads)
        key_list = None
        if keys is not None:
            key_list = [k.encode() if isinstance(k, str) else k for k in keys]
            if len(key_list) != len(items):
                raise ValueError(f"keys has {len(key_list)} entries for {len(items)} payloads")
        p = None if partition is None else self._stream._partition_index(partition)
        limit = self._stream._send_timeout if timeout is _UNSET else _timeout(timeout)
        return items, key_list, p, limit

    def send(
        self,
        payload: Any,
        *,
        key: Any = None,
        headers: Mapping[str, Any] | None = None,
        partition: int | None = None,
        timeout: float | None = _UNSET,
    ) -> tuple[int, int]:
        """Sends one message and returns its (partition, sequence) once JetStream has
        acknowledged it.

        Args:
            payload: bytes-like.
            key: bytes-like or str (UTF-8), or None; picks the partition
                (``kaelix.partition_for``) unless partition is given.
            headers: names (str) to bytes-like values.
            partition: send to this partition.
            timeout: seconds to keep trying (None: no limit; default: the stream's
                send_timeout).

        Raises:
            SendTimeout: not acknowledged in time (it may or may not be stored).
            StreamClosed: the stream or this producer is closed.
            StreamError: JetStream refused the message.
            FrameTooLarge: larger than the server's max_payload.
            ConnectError: the connection closed for good.
        """
        keys = None if key is None else [key]
        items, key_list, p, limit = self._arguments([payload], keys, partition, timeout)
        receipts = self._stream._call(self._send(items, key_list, headers, p, limit, True))
        return receipts[0]

    def send_batch(
        self,
        payloads: Iterable[Any],
        *,
        keys: Iterable[Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        partition: int | None = None,
        timeout: float | None = _UNSET,
    ) -> Receipts:
        """Sends many messages, pipelined (all in flight at once, up to nats-py's limit of
        pending acknowledgements), and returns their (partition, sequence) pairs once every
        one is acknowledged. Without keys and partition the whole batch goes to the next
        round-robin partition. ``headers`` apply to every message.

        Raises:
            SendTimeout: some were not acknowledged in time; ``exc.sent`` of them, from the
                first, were (the others may or may not be stored).
            StreamClosed, StreamError, FrameTooLarge, ConnectError: as for ``send``;
                a message that fails to encode fails the call before anything is sent.
        """
        items, key_list, p, limit = self._arguments(payloads, keys, partition, timeout)
        if not items:
            return Receipts()
        return self._stream._call(self._send(items, key_list, headers, p, limit, False))

    async def send_async(
        self,
        payload: Any,
        *,
        key: Any = None,
        headers: Mapping[str, Any] | None = None,
        partition: int | None = None,
        timeout: float | None = _UNSET,
    ) -> tuple[int, int]:
        """``send`` for asyncio: awaits the acknowledgement without blocking the loop."""
        keys = None if key is None else [key]
        items, key_list, p, limit = self._arguments([payload], keys, partition, timeout)
        receipts = await self._stream._call_async(
            self._send(items, key_list, headers, p, limit, True)
        )
        return receipts[0]

    async def send_batch_async(
        self,
        payloads: Iterable[Any],
        *,
        keys: Iterable[Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        partition: int | None = None,
        timeout: float | None = _UNSET,
    ) -> Receipts:
        """``send_batch`` for asyncio."""
        items, key_list, p, limit = self._arguments(payloads, keys, partition, timeout)
        if not items:
            return Receipts()
        return await self._stream._call_async(self._send(items, key_list, headers, p, limit, False))

    def close(self) -> None:
        """No more sends from this producer (the stream stays open). Harmless twice."""
        self._closed = True

    def __enter__(self) -> NatsProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<NatsProducer {self._producer_id} of NATS stream {self._stream._name!r}>"


class NatsConsumer:
    """Receives messages from a ``NatsStream``; made by ``NatsStream.consumer()``.

    The same surface as ``kaelix.Consumer``: ``poll``, ``poll_batch``, iteration and their
    asyncio forms. Delivery is at least once: a message is delivered again when it is not
    acknowledged within ``ack_wait`` (its consumer crashed, say), or handed back. Within a
    partition, messages arrive in the order JetStream stored them.
    """

    def __init__(
        self,
        stream: NatsStream,
        *,
        group: str | None,
        start: Start,
        partitions: tuple[int, ...] | None,
        ack: AckMode,
        ack_wait: float,
        max_deliver: int | None,
        max_ack_pending: int,
        prefetch: int,
    ) -> None:
        self._stream = stream
        self._group = group
        self._ack: AckMode = ack
        self._prefetch = prefetch
        self._partitions = (
            partitions if partitions is not None else tuple(range(stream._partitions))
        )
        self._buffer: collections.deque[Any] = collections.deque()  # fetched, not returned
        self._unacked: list[Any] = []  # returned, not acknowledged
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._redelivered = 0
        self._name = ""
        self._next_subject = ""
        self._inbox = ""
        self._owed = 0  # messages the open pull request may still deliver (0: none open)
        self._open_until = 0.0  # when the open pull request expires (monotonic)
        self._arrived: asyncio.Event | None = None
        self._sub: Any = None
        self._sub = stream._call(
            self._subscribe(start, partitions, ack_wait, max_deliver, max_ack_pending)
        )

    async def _subscribe(
        self,
        start: Start,
        partitions: tuple[int, ...] | None,
        ack_wait: float,
        max_deliver: int | None,
        max_ack_pending: int,
    ) -> Any:
        """Makes (or finds, for a group) the pull consumer, and the inbox its messages come
        to. Pull requests are made by ``_fetch``; what they deliver is appended to the buffer
        by ``_on_message`` as it arrives."""
        stream = self._stream
        js = stream._js
        api = stream._nats.js.api
        config = api.ConsumerConfig(
            durable_name=self._group,
            deliver_policy=api.DeliverPolicy.ALL if start == "earliest" else api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=-1 if max_deliver is None else max_deliver,
            max_ack_pending=max_ack_pending,
            # An ephemeral consumer whose process died goes away by itself.
            inactive_threshold=None if self._group is not None else max(60.0, 4 * ack_wait),
        )
        if partitions is not None:
            config.filter_subjects = [stream.subject(p) for p in partitions]
        deadline = time.monotonic() + stream._connect_timeout
        while True:
            try:
                info = None
                if self._group is not None:
                    with contextlib.suppress(stream._errors.not_found):
                        info = await js.consumer_info(stream._name, self._group)
                if info is None:
                    # The same durable config made twice at once is one consumer.
                    info = await js.add_consumer(stream._name, config)
                break
            except stream._errors.closed:
                raise stream._connection_lost() from None
            except Exception as exc:
                if not stream._errors.is_temporary(exc) or time.monotonic() > deadline:
                    raise StreamError(
                        f"could not make a consumer of NATS stream {stream._name!r}: {exc}"
                    ) from None
                await asyncio.sleep(0.1)
        self._name = info.name
        self._next_subject = f"{js._prefix}.CONSUMER.MSG.NEXT.{stream._name}.{self._name}"
        self._arrived = asyncio.Event()
        self._inbox = stream._nc.new_inbox()
        return await stream._nc.subscribe(self._inbox, cb=self._on_message)

    async def _on_message(self, msg: Any) -> None:
        """What a pull request delivers: a message (buffered), or a status that ends the
        request (404 nothing now, 408 expired, 409 a leader change or the like)."""
        headers = msg.headers
        if not msg.data and headers and _STATUS in headers:
            if headers[_STATUS] != "100":  # 100: an idle heartbeat
                self._owed = 0
                assert self._arrived is not None
                self._arrived.set()
            return
        self._buffer.append(msg)
        if self._owed:
            self._owed -= 1
        assert self._arrived is not None
        self._arrived.set()

    # -- attributes --

    @property
    def stream(self) -> NatsStream:
        """The stream this consumer reads."""
        return self._stream

    @property
    def group(self) -> str | None:
        """The durable consumer's name, or None for an ephemeral consumer."""
        return self._group

    @property
    def assignment(self) -> tuple[int, ...]:
        """The partitions this consumer reads."""
        return self._partitions

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    @property
    def redelivered(self) -> int:
        """Messages received that the server had delivered before (to this consumer or
        another member of its group): the at-least-once repeats."""
        return self._redelivered

    @property
    def unacknowledged(self) -> int:
        """Messages returned by polls and not acknowledged yet."""
        return len(self._unacked)

    @property
    def lag(self) -> int:
        """Messages of its partitions the server has not delivered to this consumer (or its
        group) yet."""
        self._check()
        stream = self._stream
        info = stream._call(stream._js.consumer_info(stream._name, self._name))
        return int(info.num_pending)

    def _check(self) -> None:
        if self._closed:
            raise StreamClosed("this consumer is closed")

    # -- receiving --

    async def _acknowledge(self) -> None:
        """Acknowledges every message returned so far."""
        unacked, self._unacked = self._unacked, []
        try:
            for msg in unacked:
                await msg.ack()
        except self._stream._errors.closed:
            raise self._stream._connection_lost() from None

    async def _fetch(self, want: int, deadline: float | None) -> bool:
        """Waits until the buffer has messages, asking for up to ``want`` more when no pull
        request is open; False when the deadline passed (or the consumer closed) with none.

        One request is open at a time: it asks for a batch and lives up to a few seconds,
        and the messages it delivers are buffered as they come, so a poll returns as soon
        as one is there while the rest of the batch keeps arriving for the next polls. A
        deadline that has (nearly) passed asks with ``no_wait``: what is there now."""
        stream = self._stream
        arrived = self._arrived
        assert arrived is not None
        while True:
            if self._buffer:
                return True
            if self._closed:
                return False
            now = time.monotonic()
            left = None if deadline is None else deadline - now
            last = left is not None and left <= _MIN_FETCH
            asked_now = False  # a no_wait request made now: wait for its answer
            if not self._owed or now >= self._open_until:
                request: dict[str, Any] = {"batch": want}
                if last:
                    request["no_wait"] = True
                    self._open_until = now + stream._request_timeout
                    asked_now = True
                else:
                    wait = _FETCH_SLICE if left is None else min(_FETCH_SLICE, left)
                    request["expires"] = int(wait * 1e9)
                    self._open_until = now + wait
                self._owed = want
                arrived.clear()
                try:
                    await stream._nc.publish(
                        self._next_subject, json.dumps(request).encode(), reply=self._inbox
                    )
                except stream._errors.closed:
                    if self._closed or stream._closed:
                        return False
                    raise stream._connection_lost() from None
                except Exception as exc:
                    if not stream._errors.is_temporary(exc):
                        raise StreamError(
                            f"fetching from NATS stream {stream._name!r} failed: {exc}"
                        ) from None
                    self._owed = 0
                    await asyncio.sleep(0.05)
                    continue
            else:
                arrived.clear()
            wait = self._open_until - time.monotonic()
            if deadline is not None and not asked_now:
                wait = min(wait, deadline - time.monotonic())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(arrived.wait(), max(wait, 0.0))
            if self._buffer:
                # Let the rest of what the server sent in this burst land too.
                while self._owed and len(self._buffer) < want:
                    count = len(self._buffer)
                    await asyncio.sleep(0)
                    if len(self._buffer) == count:
                        break
                return True
            if last and (not self._owed or not asked_now):
                return False  # the no_wait request answered (or one is open): nothing now
            if deadline is not None and time.monotonic() >= deadline:
                return False

    async def _rejected(self, msg: Any, exc: DecodeError) -> DecodeError:
        """Terminates a body that is not a kaelix frame (the server stops redelivering it; it
        stays in the stream) and says which."""
        with contextlib.suppress(Exception):
            await msg.term()
        meta = msg.metadata
        return DecodeError(
            f"message {meta.sequence.stream} of NATS stream {self._stream._name!r} (subject "
            f"{msg.subject!r}) is not a kaelix frame: {exc}; it was terminated for this "
            f"consumer and stays in the stream",
            exc.reason,
            exc.offset,
            exc.frame_offset,
        )

    async def _guarded(self, coro: Coroutine[Any, Any, T], closed_value: T) -> T:
        """Runs a receive so that ``close()`` from another thread ends it (returning
        ``closed_value``) instead of leaving it waiting."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await coro
        except asyncio.CancelledError:
            if self._closed:
                return closed_value
            raise
        finally:
            self._tasks.discard(task)

    async def _poll(self, limit: float | None) -> Message | None:
        self._check()
        if self._ack == "auto":
            await self._acknowledge()
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            if self._buffer:
                msg = self._buffer.popleft()
                try:
                    message = decode(msg.data)
                except DecodeError as exc:
                    raise await self._rejected(msg, exc) from None
                self._unacked.append(msg)
                if msg.metadata.num_delivered > 1:
                    self._redelivered += 1
                return message
            if not await self._fetch(self._prefetch, deadline):
                return None

    async def _poll_batch(self, max_messages: int, limit: float | None) -> MessageBatch:
        self._check()
        if self._ack == "auto":
            await self._acknowledge()
        deadline = None if limit is None else time.monotonic() + limit
        if not self._buffer and not await self._fetch(max_messages, deadline):
            return MessageBatch()
        taken = [self._buffer.popleft() for _ in range(min(max_messages, len(self._buffer)))]
        try:
            batch = MessageBatch.from_bytes(b"".join(msg.data for msg in taken))
        except DecodeError:
            # Find the bodies that are not frames; keep the others for the next poll.
            good = []
            bad: DecodeError | None = None
            for msg in taken:
                try:
                    decode(msg.data)
                except DecodeError as exc:
                    rejected = await self._rejected(msg, exc)
                    bad = bad or rejected
                else:
                    good.append(msg)
            self._buffer.extendleft(reversed(good))
            assert bad is not None
            raise bad from None
        self._unacked.extend(taken)
        self._redelivered += sum(msg.metadata.num_delivered > 1 for msg in taken)
        return batch

    def poll(self, timeout: float | None = None) -> Message | None:
        """The next message, waiting up to timeout seconds for one (None: until one comes or
        the consumer is closed; 0: only what is fetched at once). Returns None when the time
        is up, or when the consumer was closed meanwhile.

        Raises:
            StreamClosed: this consumer (or its stream) is closed.
            DecodeError: the next message's body is not a kaelix frame (it is terminated for
                this consumer; it stays in the stream).
            ConnectError: the connection closed for good.
        """
        self._check()
        limit = _timeout(timeout)
        return self._stream._call(self._guarded(self._poll(limit), None))

    def poll_batch(self, max_messages: int = 1024, timeout: float | None = None) -> MessageBatch:
        """Up to max_messages messages as one ``MessageBatch`` (every frame checked in one
        compiled pass), waiting up to timeout seconds for the first. Empty when the time is
        up or the consumer was closed meanwhile.

        Raises:
            StreamClosed, DecodeError, ConnectError: as for ``poll``; the other messages
                of a batch with a body that is not a frame are kept for the next poll.
        """
        self._check()
        max_messages = _count(max_messages, "max_messages", 1, 1 << 20)
        limit = _timeout(timeout)
        return self._stream._call(
            self._guarded(self._poll_batch(max_messages, limit), MessageBatch())
        )

    def __iter__(self) -> Iterator[Message]:
        """Messages as they come, until the consumer is closed (from another thread)."""
        while not self._closed:
            message = self.poll()
            if message is None:
                return
            yield message

    async def poll_async(self, timeout: float | None = None) -> Message | None:
        """``poll`` for asyncio: waits on the connection's loop, never blocking the caller's."""
        self._check()
        limit = _timeout(timeout)
        return await self._stream._call_async(self._guarded(self._poll(limit), None))

    async def poll_batch_async(
        self, max_messages: int = 1024, timeout: float | None = None
    ) -> MessageBatch:
        """``poll_batch`` for asyncio."""
        self._check()
        max_messages = _count(max_messages, "max_messages", 1, 1 << 20)
        limit = _timeout(timeout)
        return await self._stream._call_async(
            self._guarded(self._poll_batch(max_messages, limit), MessageBatch())
        )

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[Message]:
        while not self._closed:
            message = await self.poll_async()
            if message is None:
                return
            yield message

    # -- acknowledging --

    async def _commit(self) -> None:
        await self._acknowledge()
        try:
            await self._stream._nc.flush(timeout=max(1, round(self._stream._request_timeout)))
        except self._stream._errors.closed:
            raise self._stream._connection_lost() from None

    def commit(self) -> None:
        """Acknowledges every message returned so far, and returns once the server has
        received the acknowledgements (a flush round trip).

        Raises:
            StreamClosed: this consumer is closed.
            ConnectError: the connection closed for good.
        """
        self._check()
        self._stream._call(self._commit())

    async def commit_async(self) -> None:
        """``commit`` for asyncio."""
        self._check()
        await self._stream._call_async(self._commit())

    async def _hand_back(self, msgs: Iterable[Any]) -> None:
        for msg in msgs:
            with contextlib.suppress(Exception):  # the server redelivers it after ack_wait anyway
                await msg.nak()

    def nak(self) -> None:
        """Hands back every message returned and not acknowledged: the server delivers them
        again at once (to this consumer or another member of its group)."""
        self._check()
        unacked, self._unacked = self._unacked, []
        self._stream._call(self._hand_back(unacked))

    # -- lifetime --

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        stream = self._stream
        if self._ack == "auto":
            await self._acknowledge()
        else:
            unacked, self._unacked = self._unacked, []
            await self._hand_back(unacked)
        buffered, self._buffer = list(self._buffer), collections.deque()
        await self._hand_back(buffered)
        sub = self._sub
        if sub is not None:
            with contextlib.suppress(Exception):  # gone with the connection: the server expires it
                await sub.unsubscribe()
                if self._group is None:  # an ephemeral consumer ends with its reader
                    await stream._js.delete_consumer(stream._name, self._name)

    def close(self) -> None:
        """Stops reading. ``"auto"``: what polls returned is acknowledged; ``"manual"``:
        what was not committed is handed back. Messages fetched and never returned are
        handed back too (delivered again at once). An ephemeral consumer is deleted from
        the server; a group's stays for its other members and for later. A poll waiting in
        another thread returns None. Harmless twice."""
        if self._closed:
            return
        self._closed = True
        if self in self._stream._consumers:
            self._stream._consumers.remove(self)
        if self._stream._closed:
            return
        self._stream._loop.run(self._close())

    def __enter__(self) -> NatsConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        group = "" if self._group is None else f" group={self._group!r}"
        return (
            f"<NatsConsumer of NATS stream {self._stream._name!r}{group} "
            f"partitions={self._partitions}>"
        )
