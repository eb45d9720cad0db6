"""JetStreamSink and JetStreamSource: a local ``kaelix.Stream`` forwarded to JetStream, and
one fed from it, each by a thread of its own.

Both relay frames as they are: a message keeps its producer id, partition, sequence,
timestamp and checksum from the producer that sent it to the machine that receives it, so
``check_delivery`` on the far side compares with what the near side sent, and a sink that
forwards a message twice (restarted over what it had sent) is deduplicated by JetStream
through the same message id a ``NatsProducer`` would have given it.

Imports the kaelix API and the NATS stream; never the bench or the monitor.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from typing import Any

from kaelix._batch import MessageBatch
from kaelix._stream import Start, Stream
from kaelix.connect.nats._jetstream import NatsStream
from kaelix.errors import PeerGone, RingClosed, RingFull, StreamClosed

__all__ = ["JetStreamSink", "JetStreamSource"]

_UNSET: Any = object()
_IDLE_POLL = 0.05  # seconds a relay waits for a message before it looks at its stop flag


def _check_ends(
    local: object, remote: object, role: str, batch: object, *, local_first: bool
) -> None:
    """A bridge's arguments: a local Stream, a NatsStream (called ``role``), a batch size;
    the receiving side needs at least the sending side's partitions, as frames keep theirs."""
    if not isinstance(local, Stream):
        raise TypeError(f"stream must be a kaelix.Stream, got {type(local).__name__}")
    if not isinstance(remote, NatsStream):
        raise TypeError(f"{role} must be a NatsStream, got {type(remote).__name__}")
    sender, receiver = (remote, local) if local_first else (local, remote)
    if receiver.partitions < sender.partitions:
        raise ValueError(
            f"{_describe(receiver)} has {receiver.partitions} partition(s), fewer than the "
            f"{sender.partitions} of {_describe(sender)}: frames keep their partition"
        )
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")


def _describe(stream: Stream | NatsStream) -> str:
    kind = "NATS stream" if isinstance(stream, NatsStream) else "stream"
    return f"{kind} {stream.name!r}"


class _Relay(abc.ABC):
    """A thread that moves batches until stopped, keeping the first error for ``stop()``."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._moved = 0
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self._error = exc
        finally:
            self._finish()

    @abc.abstractmethod
    def _run(self) -> None:
        """Moves batches until stopped (or the source ends); runs on the thread."""

    def _finish(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Releases what the thread used (run on the thread, whatever happened)."""

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """What stopped the thread, if it failed."""
        return self._error

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the thread to end by itself; True if it did. Raises what stopped it."""
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return not self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Asks the thread to finish and waits for it; raises what stopped it, if it failed.
        Harmless twice."""
        self._stop.set()
        self.join(timeout)

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class JetStreamSink(_Relay):
    """Forwards a local ``kaelix.Stream`` to a ``NatsStream``, frames as they are, on a thread
    of its own: the application keeps its fast in-process path, and consumers on other
    machines read the same messages from JetStream.

    The sink reads ``stream`` with a consumer of its own (made in the constructor, so it
    sees every message sent from then on, and those kept before with ``start="earliest"``)
    and publishes each batch to the partition's subject, waiting for JetStream's
    acknowledgement before it takes the next. It ends by itself when ``stream`` is closed and
    drained; ``stop()`` forwards what is waiting, then ends.

    Args:
        stream: the local stream (in process or shared).
        target: the NATS stream; it needs at least as many partitions as ``stream``.
        group: read ``stream`` as a member of this consumer group (None: broadcast).
        start: ``"earliest"`` or ``"latest"``, for the local consumer.
        batch: messages forwarded at a time, at most.
        send_timeout: seconds to keep retrying one batch (default: the target's).

    The thread's failure (the target unreachable past the timeout) is raised by ``stop()``
    and ``join()``; ``forwarded`` counts what JetStream acknowledged.
    """

    def __init__(
        self,
        stream: Stream,
        target: NatsStream,
        *,
        group: str | None = None,
        start: Start = "earliest",
        batch: int = 1024,
        send_timeout: float | None = _UNSET,
    ) -> None:
        _check_ends(stream, target, "target", batch, local_first=False)
        super().__init__(f"kaelix-sink-{stream.name}")
        self._source = stream
        self._target = target
        self._batch = batch
        self._timeout = target.send_timeout if send_timeout is _UNSET else send_timeout
        self._consumer = stream.consumer(group=group, start=start)
        self._thread.start()

    @property
    def forwarded(self) -> int:
        """Messages JetStream has acknowledged."""
        return self._moved

    def _forward(self, batch: MessageBatch) -> None:
        self._moved += self._target.forward(batch, timeout=self._timeout)

    def _run(self) -> None:
        consumer = self._consumer
        while True:
            batch = consumer.poll_batch(self._batch, timeout=_IDLE_POLL)
            if len(batch):
                self._forward(batch)
            elif self._stop.is_set() or self._source.closed:
                return  # nothing was waiting: drained

    def _finish(self) -> None:
        self._consumer.close()

    def __enter__(self) -> JetStreamSink:
        return self

    def __repr__(self) -> str:
        return (
            f"<JetStreamSink {self._source.name!r} -> NATS {self._target.name!r}, "
            f"{self._moved} forwarded>"
        )


class JetStreamSource(_Relay):
    """Feeds a local ``kaelix.Stream`` from a ``NatsStream``, frames as they are, on a thread
    of its own: each message goes into the local partition it was sent to, and is
    acknowledged to JetStream only once it is in the local stream (at least once: a source
    that dies between the two has the batch delivered again to the next one).

    Args:
        source: the NATS stream.
        stream: the local stream; it needs at least as many partitions as ``source``.
        group: the durable consumer the source reads as; sources with the same group, on
            any machine, split the messages and resume where the group was.
        start: ``"earliest"`` or ``"latest"``, for a new group.
        batch: messages moved at a time, at most.
        ack_wait: seconds JetStream waits for a batch's acknowledgement before delivering
            it again.

    It runs until ``stop()`` (which finishes the batch in hand) or until ``stream`` closes;
    ``received`` counts the messages put into the local stream.
    """

    def __init__(
        self,
        source: NatsStream,
        stream: Stream,
        *,
        group: str,
        start: Start = "earliest",
        batch: int = 1024,
        ack_wait: float = 30.0,
    ) -> None:
        _check_ends(stream, source, "source", batch, local_first=True)
        super().__init__(f"kaelix-source-{source.name}")
        self._source = source
        self._local = stream
        self._batch = batch
        self._consumer = source.consumer(
            group=group, start=start, ack="manual", ack_wait=ack_wait, prefetch=batch
        )
        self._thread.start()

    @property
    def received(self) -> int:
        """Messages put into the local stream."""
        return self._moved

    def _put(self, handle: Any, frame: memoryview) -> bool:
        """Puts one frame into a local partition, waiting for room; False if stopped."""
        policy = self._local.backpressure
        while True:
            try:
                if handle.push(frame):
                    return True
                if policy == "block":
                    handle.put(frame, _IDLE_POLL)
                    return True
            except RingFull:
                pass  # no room and no wait for this policy: look again below, unless stopped
            except PeerGone:
                continue  # a dead consumer's cursor was released: look again
            except RingClosed:
                raise StreamClosed(f"stream {self._local.name!r} is closed") from None
            if self._stop.is_set():
                return False
            if policy != "block":
                time.sleep(0.001)

    def _run(self) -> None:
        consumer = self._consumer
        local = self._local
        while not self._stop.is_set():
            batch = consumer.poll_batch(self._batch, timeout=_IDLE_POLL)
            if not len(batch):
                if local.closed:
                    return
                continue
            backend = local._open_backend()
            partitions = batch.partition.tolist()
            for i, p in enumerate(partitions):
                if local.closed:
                    raise StreamClosed(f"stream {local.name!r} is closed")
                if not self._put(backend.producer_handle(p), batch.frame(i)):
                    consumer.nak()  # stopped while waiting for room: hand the batch back
                    return
            consumer.commit()
            self._moved += len(batch)

    def _finish(self) -> None:
        with contextlib.suppress(
            Exception
        ):  # the connection went first: JetStream redelivers after ack_wait
            self._consumer.close()

    def __enter__(self) -> JetStreamSource:
        return self

    def __repr__(self) -> str:
        return (
            f"<JetStreamSource NATS {self._source.name!r} -> {self._local.name!r}, "
            f"{self._moved} received>"
        )
