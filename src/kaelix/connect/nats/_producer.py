"""NatsProducer and the publisher under it: frames published with their message ids,
pipelined, each waited for until JetStream acknowledges it, published again (the same id,
so JetStream drops a copy it stored already) until the send's deadline. See
docs/connect.md, "Publishing". Imports the kaelix API; nats-py only through the stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kaelix._batch import MessageBatch
from kaelix._codec import FrameTooLarge, Message, decode, encode
from kaelix._stream import Receipts, _add_run, _timeout, partition_for
from kaelix.connect.nats._common import _UNSET, _WINDOW, MSG_ID, _left
from kaelix.errors import SendTimeout, StreamClosed, StreamError

if TYPE_CHECKING:
    from kaelix.connect.nats._jetstream import NatsStream

__all__ = ["NatsProducer"]


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
