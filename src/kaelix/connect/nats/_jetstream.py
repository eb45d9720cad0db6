"""NatsStream: a kaelix stream held by a NATS JetStream stream.

A ``NatsStream`` is one JetStream stream and one connection. Each message is one kaelix frame
(docs/wire-format.md) as the NATS message body, published on the subject ``<prefix>.<stream>.
<partition>.<producer id>`` with the header ``Nats-Msg-Id: <producer id>.<partition>.
<sequence>``, so that JetStream drops a retried publish it stored already (see
docs/connect.md). Producers (``_producer``) wait for JetStream's publish acknowledgement of
every message; consumers (``_consumer``) are pull consumers with explicit acks.

Runs its nats-py client on a private event loop (``_loop.PrivateLoop``). Imports the kaelix
API and, lazily, nats-py; never the bench or the monitor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any

from kaelix._batch import MessageBatch
from kaelix._stream import _timeout
from kaelix.connect.nats._common import (
    _MAX_PARTITIONS,
    _META_FORMAT,
    _META_PARTITIONS,
    _PREFIX_RULE,
    _UNSET,
    FORMAT,
    AckMode,
    Start,
    Storage,
    T,
    _check_name,
    _count,
    _Errors,
    _positive_number,
)
from kaelix.connect.nats._consumer import NatsConsumer
from kaelix.connect.nats._loop import PrivateLoop, require_nats
from kaelix.connect.nats._producer import NatsProducer, _Publisher
from kaelix.errors import ConnectError, StreamClosed, StreamError, StreamNotFound

__all__ = ["NatsStream"]


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
