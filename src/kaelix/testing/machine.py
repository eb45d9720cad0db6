"""StreamMachine: a hypothesis state machine that runs a stream system beside a plain-Python
reference model of kaelix's stream semantics (docs/streams.md), and fails, with a short
program to replay, the moment the two disagree.

``StreamModel`` is the reference: partitions of bounded byte capacity, producers numbering
their messages per partition, keys mapped to partitions by CRC-32C, round-robin without a
key, broadcast consumers with a cursor each, consumer groups that split partitions and share
cursors, and what each backpressure policy does when a partition is full. It is ordinary
Python, small enough to read in one sitting, and it decides alone what the system must
answer.

``StreamMachine`` drives kaelix's own in-process ``Stream`` by default. To test another
system, subclass it and override the ``system_*`` hooks (see docs/plugin.md).

Requires hypothesis (``pip install 'kaelix[test]'``); ``import kaelix`` never imports this
module, and it never imports kaelix.bench or kaelix.monitor.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Literal, Protocol

import kaelix

try:
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        initialize,
        invariant,
        rule,
    )
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "kaelix.testing.machine needs hypothesis: pip install 'kaelix[test]' (or hypothesis>=6.100)"
    ) from error

__all__ = [
    "DeliveredMessage",
    "ModelMessage",
    "StreamConfig",
    "StreamMachine",
    "StreamModel",
]

Backpressure = Literal["block", "drop_oldest", "error"]
Start = Literal["earliest", "latest"]
_POLICIES: tuple[Backpressure, ...] = ("block", "drop_oldest", "error")


class DeliveredMessage(Protocol):
    """What a system's poll returns: ``kaelix.Message`` qualifies, as does any object with
    these attributes."""

    @property
    def producer_id(self) -> int: ...
    @property
    def partition(self) -> int: ...
    @property
    def sequence(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def payload(self) -> bytes: ...


@dataclass(frozen=True)
class StreamConfig:
    """The stream a run of the machine works on: ``partitions``, ``capacity`` in bytes per
    partition (a power of two, at least 4096, as kaelix rounds it) and the ``backpressure``
    policy."""

    partitions: int
    capacity: int
    backpressure: Backpressure

    def __post_init__(self) -> None:
        if not isinstance(self.partitions, int) or not 1 <= self.partitions <= 1024:
            raise ValueError(f"partitions must be an int from 1 to 1024, got {self.partitions!r}")
        c = self.capacity
        if not isinstance(c, int) or c < 4096 or c & (c - 1):
            raise ValueError(f"capacity must be a power of two >= 4096, got {c!r}")
        if self.backpressure not in _POLICIES:
            raise ValueError(
                f"backpressure must be one of {_POLICIES!r}, got {self.backpressure!r}"
            )


@dataclass(frozen=True)
class ModelMessage:
    """A message as the model knows it: its identity, content, and frame size in bytes."""

    producer_id: int
    partition: int
    sequence: int
    key: bytes | None
    payload: bytes
    size: int

    def describe(self) -> str:
        """``p1/part0/seq3`` and what it carries."""
        key = "" if self.key is None else f" key={self.key!r}"
        return (
            f"p{self.producer_id}/part{self.partition}/seq{self.sequence}{key} "
            f"({len(self.payload)}-byte payload)"
        )


def frame_size(payload: bytes, key: bytes | None) -> int:
    """Bytes a message without headers takes in a partition: the 56-byte header, the key
    and the payload, rounded up to 8."""
    n = kaelix.HEADER_SIZE + len(payload) + (0 if key is None else len(key))
    return (n + 7) & ~7


@dataclass(eq=False)  # cursors are told apart by identity, never by position
class _Cursor:
    position: int  # index into the partition's published messages of the next one to read
    skipped: int = 0


@dataclass
class _Partition:
    published: list[ModelMessage] = field(default_factory=list)
    # Where a consumer starts when no cursor is active; in a drop_oldest partition, the
    # oldest message kept (everything below it was overwritten).
    floor: int = 0
    cursors: list[_Cursor] = field(default_factory=list)  # the active ones


@dataclass
class _Group:
    members: list[int] = field(default_factory=list)  # in the order they joined
    cursors: dict[int, _Cursor] = field(default_factory=dict)


@dataclass
class _Consumer:
    group: str | None
    cursors: dict[int, _Cursor]  # a broadcast consumer's own; empty for a group member


class StreamModel:
    """kaelix's stream semantics in plain Python: what each send, join, leave and poll must
    do. One instance models one stream.

    - A partition holds ``capacity`` bytes of messages, each its ``frame_size``.
    - A message goes to the partition given, else ``crc32c(key) % partitions``, else the
      producer's next partition in round-robin (starting at 0). Its sequence is the number
      of messages its producer published to that partition before it.
    - ``"block"`` and ``"error"`` refuse a message that does not fit in the bytes after the
      slowest active cursor (or, with none, after the floor); the machine sends without
      waiting, so ``"block"`` refuses at once like ``"error"``. ``"drop_oldest"`` always
      accepts: it moves the floor past the oldest messages until the new one fits, and a
      consumer whose cursor fell below the floor jumps to it, counting what it passed over
      as skipped.
    - A cursor starting at ``"latest"`` reads only what is published after it joined; at
      ``"earliest"``, from the oldest message kept: the floor of a ``"drop_oldest"``
      partition, otherwise the slowest active cursor (or the floor when none is active).
      When the last active cursor of a non-overwriting partition closes, the floor moves up
      to it.
    - A broadcast consumer has a cursor per partition it reads. Consumers of a group share
      one cursor per partition (made when the group's first member joins, at its start);
      partition ``p`` is read by member ``p % members``, members in the order they joined;
      when the last member leaves, the cursors are closed.
    - A poll returns, from one of the consumer's partitions that has one, the next message
      after its cursor; nothing when none has.
    """

    def __init__(self, config: StreamConfig) -> None:
        self.config = config
        self.partitions = [_Partition() for _ in range(config.partitions)]
        self._sequences: dict[tuple[int, int], int] = {}
        self._round_robin: dict[int, int] = {}
        self._consumers: dict[int, _Consumer] = {}
        self._groups: dict[str, _Group] = {}

    # -- producers --

    def add_producer(self, producer_id: int) -> None:
        """A producer whose messages carry ``producer_id``."""
        if producer_id in self._round_robin:
            raise ValueError(f"producer id {producer_id} is already in use")
        self._round_robin[producer_id] = 0

    def route(self, producer_id: int, key: bytes | None, partition: int | None) -> int:
        """The partition a send goes to (advancing the round-robin when it is used)."""
        if partition is not None:
            return partition
        if key is not None:
            return kaelix.partition_for(key, self.config.partitions)
        p = self._round_robin[producer_id]
        self._round_robin[producer_id] = (p + 1) % self.config.partitions
        return p

    def fits(self, partition: int, size: int) -> bool:
        """True when a message of ``size`` bytes is accepted now (always, with
        ``"drop_oldest"``)."""
        if self.config.backpressure == "drop_oldest":
            return True
        part = self.partitions[partition]
        gate = min((c.position for c in part.cursors), default=part.floor)
        used = sum(m.size for m in part.published[gate:])
        return used + size <= self.config.capacity

    def send(
        self, producer_id: int, payload: bytes, key: bytes | None, partition: int
    ) -> ModelMessage | None:
        """Publishes a message to ``partition`` (from ``route``): the message, or None
        when the policy refuses it because the partition is full."""
        size = frame_size(payload, key)
        if not self.fits(partition, size):
            return None
        part = self.partitions[partition]
        if self.config.backpressure == "drop_oldest":
            used = sum(m.size for m in part.published[part.floor :])
            while used + size > self.config.capacity:
                used -= part.published[part.floor].size
                part.floor += 1
        sequence = self._sequences.get((producer_id, partition), 0)
        self._sequences[producer_id, partition] = sequence + 1
        message = ModelMessage(producer_id, partition, sequence, key, payload, size)
        part.published.append(message)
        return message

    # -- consumers --

    def _open_cursor(self, partition: int, start: Start) -> _Cursor:
        part = self.partitions[partition]
        if start == "latest":
            position = len(part.published)
        elif self.config.backpressure == "drop_oldest" or not part.cursors:
            position = part.floor
        else:
            position = min(c.position for c in part.cursors)
        cursor = _Cursor(position)
        part.cursors.append(cursor)
        return cursor

    def _close_cursor(self, partition: int, cursor: _Cursor) -> None:
        part = self.partitions[partition]
        part.cursors.remove(cursor)
        if not part.cursors and self.config.backpressure != "drop_oldest":
            part.floor = max(part.floor, cursor.position)

    def add_consumer(
        self,
        consumer: int,
        *,
        group: str | None = None,
        start: Start = "earliest",
        partitions: tuple[int, ...] | None = None,
    ) -> None:
        """A consumer (named by the caller's ``consumer`` number) joins."""
        if consumer in self._consumers:
            raise ValueError(f"consumer {consumer} already joined")
        if group is None:
            chosen = tuple(range(self.config.partitions)) if partitions is None else partitions
            cursors = {p: self._open_cursor(p, start) for p in dict.fromkeys(chosen)}
            self._consumers[consumer] = _Consumer(None, cursors)
            return
        g = self._groups.setdefault(group, _Group())
        if not g.members:
            g.cursors = {p: self._open_cursor(p, start) for p in range(self.config.partitions)}
        g.members.append(consumer)
        self._consumers[consumer] = _Consumer(group, {})

    def remove_consumer(self, consumer: int) -> None:
        """A consumer leaves (closes)."""
        state = self._consumers.pop(consumer)
        if state.group is None:
            for p, cursor in state.cursors.items():
                self._close_cursor(p, cursor)
            return
        g = self._groups[state.group]
        g.members.remove(consumer)
        if not g.members:
            for p, cursor in g.cursors.items():
                self._close_cursor(p, cursor)
            del self._groups[state.group]

    @property
    def consumers(self) -> tuple[int, ...]:
        """The consumers joined, in the order they joined."""
        return tuple(self._consumers)

    def group_of(self, consumer: int) -> str | None:
        """The consumer's group, or None for a broadcast consumer."""
        return self._consumers[consumer].group

    def _cursors(self, consumer: int) -> dict[int, _Cursor]:
        state = self._consumers[consumer]
        if state.group is None:
            return state.cursors
        g = self._groups[state.group]
        return {p: g.cursors[p] for p in self.assignment(consumer)}

    def assignment(self, consumer: int) -> tuple[int, ...]:
        """The partitions the consumer reads now."""
        state = self._consumers[consumer]
        if state.group is None:
            return tuple(state.cursors)
        members = self._groups[state.group].members
        i, n = members.index(consumer), len(members)
        return tuple(p for p in range(self.config.partitions) if p % n == i)

    def next_messages(self, consumer: int) -> dict[int, ModelMessage | None]:
        """Per partition the consumer reads: the message its next poll may return from it."""
        out: dict[int, ModelMessage | None] = {}
        for p, cursor in self._cursors(consumer).items():
            part = self.partitions[p]
            position = max(cursor.position, part.floor)
            out[p] = part.published[position] if position < len(part.published) else None
        return out

    def deliver(self, consumer: int, partition: int) -> ModelMessage:
        """Moves the consumer past the next message of ``partition`` and returns it (a
        cursor below a drop_oldest floor first jumps to it, counting the skipped)."""
        cursor = self._cursors(consumer)[partition]
        part = self.partitions[partition]
        if cursor.position < part.floor:
            cursor.skipped += part.floor - cursor.position
            cursor.position = part.floor
        message = part.published[cursor.position]
        cursor.position += 1
        return message

    def skipped(self, consumer: int) -> int:
        """Messages overwritten before the consumer (for a group member: its group, on the
        partitions it reads now) read them, counted as its polls pass over them."""
        return sum(c.skipped for c in self._cursors(consumer).values())


def _describe(message: DeliveredMessage) -> str:
    key = "" if message.key is None else f" key={bytes(message.key)!r}"
    return (
        f"p{message.producer_id}/part{message.partition}/seq{message.sequence}{key} "
        f"({len(message.payload)}-byte payload)"
    )


class StreamMachine(RuleBasedStateMachine):
    """A hypothesis ``RuleBasedStateMachine`` that runs a stream system beside a
    ``StreamModel`` and checks every answer against the model's.

    The rules add producers and send (one message or a burst; with or without a key, to an
    explicit partition or not; payloads small to large enough to fill a partition in a few
    sends), add broadcast consumers (all partitions or some, from ``"earliest"`` or
    ``"latest"``) and group members, poll, close consumers, and restart them (close one and
    join another in its place). The system answers through
    the ``system_*`` hooks, which by default drive a kaelix in-process ``Stream``; override
    them to test your own system. A mismatch fails with what the system did, what the model
    expected, and hypothesis's shortest program that shows it.

    Class attributes tune a subclass: ``POLICIES`` (the backpressure policies to try),
    ``MAX_PARTITIONS``, ``CAPACITY``, ``MAX_PRODUCERS``, ``MAX_CONSUMERS``, ``GROUPS`` (group
    names; empty: no groups), ``KEYS`` and ``MAX_PAYLOAD``.

    Run it with ``StreamMachine.TestCase`` (a ``unittest`` case pytest collects) or
    ``hypothesis.stateful.run_state_machine_as_test(StreamMachine)``.
    """

    POLICIES: tuple[Backpressure, ...] = _POLICIES
    MAX_PARTITIONS: int = 3
    CAPACITY: int = 4096
    MAX_PRODUCERS: int = 3
    MAX_CONSUMERS: int = 4
    GROUPS: tuple[str, ...] = ("g1", "g2")
    KEYS: tuple[bytes, ...] = (b"alpha", b"beta", b"gamma", b"delta")
    MAX_PAYLOAD: int = 1500

    def __init__(self) -> None:
        super().__init__()
        self.model: StreamModel | None = None
        self.producers: list[int] = []  # the producers' ids, by producer number
        self._consumer_numbers = itertools.count()
        self._payloads = itertools.count()
        self._stream: kaelix.Stream | None = None
        self._kaelix_producers: dict[int, kaelix.Producer] = {}
        self._kaelix_consumers: dict[int, kaelix.Consumer] = {}

    # ---------------------------------------------------------------------------------------
    # The system under test: override these to drive your own system
    # ---------------------------------------------------------------------------------------

    def system_open(self, config: StreamConfig) -> None:
        """Makes the system's stream for this run, as ``config`` says."""
        self._stream = kaelix.Stream(
            f"kx-machine-{uuid.uuid4().hex[:12]}",
            partitions=config.partitions,
            capacity=config.capacity,
            backpressure=config.backpressure,
        )

    def system_producer(self) -> int:
        """Adds a producer; returns the producer id its messages carry (unique per run)."""
        assert self._stream is not None
        producer = self._stream.producer()
        self._kaelix_producers[producer.producer_id] = producer
        return producer.producer_id

    def system_send(
        self, producer_id: int, payload: bytes, *, key: bytes | None, partition: int | None
    ) -> tuple[int, int] | None:
        """Sends one message without waiting; returns its (partition, sequence), or None if
        the system refused it because the partition is full (kaelix: ``BufferFull``, or
        ``SendTimeout`` from a ``"block"`` send with ``timeout=0``)."""
        producer = self._kaelix_producers[producer_id]
        try:
            return producer.send(payload, key=key, partition=partition, timeout=0)
        except (kaelix.BufferFull, kaelix.SendTimeout):
            return None

    def system_consumer(
        self,
        consumer: int,
        *,
        group: str | None,
        start: Start,
        partitions: tuple[int, ...] | None,
    ) -> None:
        """Adds consumer number ``consumer``: broadcast (``group`` None; all partitions or
        those given) or a member of ``group``, starting at ``start``."""
        assert self._stream is not None
        self._kaelix_consumers[consumer] = self._stream.consumer(
            group=group, start=start, partitions=partitions
        )

    def system_poll(self, consumer: int) -> DeliveredMessage | None:
        """The consumer's next message, without waiting; None when it has none."""
        return self._kaelix_consumers[consumer].poll(timeout=0)

    def system_close_consumer(self, consumer: int) -> None:
        """Closes the consumer (a group member leaves its group)."""
        self._kaelix_consumers.pop(consumer).close()

    def system_assignment(self, consumer: int) -> tuple[int, ...] | None:
        """The partitions the consumer reads now, in any order; None if the system does not
        say (then it is not checked)."""
        return self._kaelix_consumers[consumer].assignment

    def system_skipped(self, consumer: int) -> int | None:
        """Messages the consumer lost to ``"drop_oldest"`` so far (as ``StreamModel.skipped``
        counts them); None if the system does not say (then it is not checked)."""
        return self._kaelix_consumers[consumer].skipped

    def system_close(self) -> None:
        """Ends the run: releases everything ``system_open`` made."""
        if self._stream is not None:
            self._stream.close()

    # ---------------------------------------------------------------------------------------
    # Rules
    # ---------------------------------------------------------------------------------------

    @initialize(data=st.data())
    def open_stream(self, data: st.DataObject) -> None:
        config = StreamConfig(
            partitions=data.draw(st.integers(1, self.MAX_PARTITIONS), label="partitions"),
            capacity=self.CAPACITY,
            backpressure=data.draw(st.sampled_from(self.POLICIES), label="backpressure"),
        )
        self.model = StreamModel(config)
        self.system_open(config)
        self._add_producer()

    def _model(self) -> StreamModel:
        assert self.model is not None, "open_stream runs first"
        return self.model

    # Rules that cannot act (no consumer to poll, the limit of producers reached) do nothing
    # rather than wait for a precondition: a rule chosen among those whose preconditions hold
    # makes a program much harder for hypothesis to shrink.

    @rule()
    def add_producer(self) -> None:
        if len(self.producers) < self.MAX_PRODUCERS:
            self._add_producer()

    def _add_producer(self) -> None:
        producer_id = self.system_producer()
        if producer_id in self.producers:
            raise AssertionError(
                f"system_producer returned id {producer_id}, already given to producer "
                f"{self.producers.index(producer_id)}"
            )
        self._model().add_producer(producer_id)
        self.producers.append(producer_id)

    def _payload(self, size: int) -> bytes:
        label = next(self._payloads).to_bytes(4, "little")
        return (label * (size // 4 + 1))[:size]

    def _send(self, producer: int, size: int, key: int | None, partition: int | None) -> None:
        model = self._model()
        producer_id = self.producers[producer % len(self.producers)]
        key_bytes = None if key is None else self.KEYS[key % len(self.KEYS)]
        if partition is not None:
            partition %= model.config.partitions
        payload = self._payload(size)
        got = self.system_send(producer_id, payload, key=key_bytes, partition=partition)
        target = model.route(producer_id, key_bytes, partition)
        expected = model.send(producer_id, payload, key_bytes, target)
        what = f"send by producer {producer_id} to partition {target} ({len(payload)} bytes)"
        if expected is None and got is not None:
            raise AssertionError(
                f"{what} was accepted as {got}, but the partition is full under "
                f"{model.config.backpressure!r}: the model refuses it"
            )
        if expected is not None and got != (expected.partition, expected.sequence):
            got_text = "refused (full)" if got is None else f"given {got}"
            raise AssertionError(
                f"{what} was {got_text}; the model gives it (partition, sequence) = "
                f"{(expected.partition, expected.sequence)}"
            )

    @rule(
        producer=st.integers(0, 7),
        size=st.integers(0, 120) | st.integers(0, 1500),
        key=st.none() | st.integers(0, 7),
        partition=st.none() | st.integers(0, 7),
    )
    def send(self, producer: int, size: int, key: int | None, partition: int | None) -> None:
        self._send(producer, min(size, self.MAX_PAYLOAD), key, partition)

    @rule(
        producer=st.integers(0, 7),
        count=st.integers(2, 40),
        size=st.integers(0, 200),
        partition=st.none() | st.integers(0, 7),
    )
    def send_burst(self, producer: int, count: int, size: int, partition: int | None) -> None:
        for _ in range(count):
            self._send(producer, min(size, self.MAX_PAYLOAD), None, partition)

    @rule(
        start=st.sampled_from(("earliest", "latest")),
        partitions=st.none() | st.lists(st.integers(0, 7), min_size=1, max_size=3),
    )
    def add_consumer(self, start: Start, partitions: list[int] | None) -> None:
        model = self._model()
        if len(model.consumers) >= self.MAX_CONSUMERS:
            return
        chosen = None
        if partitions is not None:
            chosen = tuple(dict.fromkeys(p % model.config.partitions for p in partitions))
        self._join(None, start, chosen)

    def _join(self, group: str | None, start: Start, partitions: tuple[int, ...] | None) -> None:
        number = next(self._consumer_numbers)
        self.system_consumer(number, group=group, start=start, partitions=partitions)
        self._model().add_consumer(number, group=group, start=start, partitions=partitions)

    @rule(group=st.integers(0, 7), start=st.sampled_from(("earliest", "latest")))
    def add_group_member(self, group: int, start: Start) -> None:
        if not self.GROUPS or len(self._model().consumers) >= self.MAX_CONSUMERS:
            return
        self._join(self.GROUPS[group % len(self.GROUPS)], start, None)

    def _which(self, consumer: int) -> int:
        joined = self._model().consumers
        return joined[consumer % len(joined)]

    def _poll(self, number: int) -> bool:
        """One poll, checked; True if it returned a message."""
        model = self._model()
        got = self.system_poll(number)
        expected = model.next_messages(number)
        who = f"consumer {number} ({self._consumer_text(number)})"
        waiting = {p: m for p, m in expected.items() if m is not None}
        if got is None:
            if waiting:
                listed = "; ".join(f"part{p}: {m.describe()}" for p, m in waiting.items())
                raise AssertionError(f"{who} polled nothing, but the model has for it: {listed}")
            return False
        if got.partition not in expected:
            raise AssertionError(
                f"{who} received {_describe(got)} from partition {got.partition}, which it "
                f"does not read (the model assigns it {tuple(expected)})"
            )
        want = expected[got.partition]
        if want is None:
            raise AssertionError(
                f"{who} received {_describe(got)}, but the model has nothing waiting for it "
                f"in partition {got.partition} (a duplicate, or a message never sent)"
            )
        identity = (got.producer_id, got.partition, got.sequence)
        if identity != (want.producer_id, want.partition, want.sequence):
            raise AssertionError(
                f"{who} received {_describe(got)} from partition {got.partition}; the model's "
                f"next there is {want.describe()} (a message lost, repeated or out of order)"
            )
        key = None if got.key is None else bytes(got.key)
        if key != want.key or bytes(got.payload) != want.payload:
            raise AssertionError(
                f"{who} received {_describe(got)} with other content than was sent: "
                f"key {key!r} vs {want.key!r}, payload of {len(got.payload)} vs "
                f"{len(want.payload)} bytes"
            )
        model.deliver(number, got.partition)
        skipped = self.system_skipped(number)
        if skipped is not None and skipped != model.skipped(number):
            raise AssertionError(
                f"{who} reports {skipped} message(s) skipped; the model counts "
                f"{model.skipped(number)} overwritten before it read them"
            )
        return True

    def _consumer_text(self, number: int) -> str:
        model = self._model()
        group = model.group_of(number)
        reads = f"reads partitions {model.assignment(number)}"
        return reads if group is None else f"group {group!r}, {reads}"

    @rule(consumer=st.integers(0, 7), polls=st.integers(1, 50))
    def poll(self, consumer: int, polls: int) -> None:
        if not self._model().consumers:
            return
        number = self._which(consumer)
        for _ in range(polls):
            if not self._poll(number):
                break

    @rule(consumer=st.integers(0, 7))
    def close_consumer(self, consumer: int) -> None:
        if not self._model().consumers:
            return
        number = self._which(consumer)
        self.system_close_consumer(number)
        self._model().remove_consumer(number)

    @rule(consumer=st.integers(0, 7), start=st.sampled_from(("earliest", "latest")))
    def restart_consumer(self, consumer: int, start: Start) -> None:
        """A consumer closes and a new one takes its place at once: a member of the same
        group, or a broadcast consumer of the same partitions (where rebalancing and
        retention bugs live)."""
        model = self._model()
        if not model.consumers:
            return
        number = self._which(consumer)
        group = model.group_of(number)
        partitions = None if group is not None else model.assignment(number)
        self.system_close_consumer(number)
        model.remove_consumer(number)
        self._join(group, start, partitions)

    @invariant()
    def assignments_agree(self) -> None:
        if self.model is None:
            return
        for number in self.model.consumers:
            got = self.system_assignment(number)
            want = self.model.assignment(number)
            if got is not None and sorted(got) != sorted(want):
                raise AssertionError(
                    f"consumer {number} ({self._consumer_text(number)} in the model) reads "
                    f"partitions {tuple(got)} in the system"
                )

    def teardown(self) -> None:
        self.system_close()
