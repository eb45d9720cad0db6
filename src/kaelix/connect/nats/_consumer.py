"""NatsConsumer: a JetStream pull consumer with explicit acks, behind kaelix's consumer
surface. It makes its own pull requests on an inbox subscription, one open at a time, and
buffers what they deliver as it arrives. See docs/connect.md, "Consuming". Imports the kaelix
API; nats-py only through the stream.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from kaelix._batch import MessageBatch
from kaelix._codec import DecodeError, Message, decode
from kaelix._stream import _timeout
from kaelix.connect.nats._common import (
    _FETCH_SLICE,
    _MIN_FETCH,
    _STATUS,
    AckMode,
    Start,
    T,
    _count,
)
from kaelix.errors import StreamClosed, StreamError

if TYPE_CHECKING:
    from kaelix.connect.nats._jetstream import NatsStream

__all__ = ["NatsConsumer"]


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
