"""StreamMachine (kaelix.testing.machine) against kaelix's own in-process Stream, and against
systems with planted bugs that it must find with a short program."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

import kaelix
from kaelix.testing.machine import (
    DeliveredMessage,
    StreamConfig,
    StreamMachine,
    StreamModel,
    frame_size,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugin.md"

FAST = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Looking for a planted bug: one failure, shrunk, without the costly explain phase; the same
# examples every run, so the length of the shrunk program is stable.
SEARCH = settings(
    FAST,
    max_examples=2000,  # a bug needing four rules in order is found within ~1000
    stateful_step_count=20,
    derandomize=True,
    phases=(Phase.generate, Phase.shrink),
    report_multiple_bugs=False,
)


# --------------------------------------------------------------------------------------------
# The model alone
# --------------------------------------------------------------------------------------------


def test_frame_size_is_kaelix_frame_length() -> None:
    for payload, key in [(b"", None), (b"x" * 13, b"k"), (b"y" * 64, b"customer-7")]:
        assert frame_size(payload, key) == len(kaelix.encode(kaelix.Message(payload, key=key)))


def test_model_routes_like_kaelix() -> None:
    model = StreamModel(StreamConfig(partitions=4, capacity=4096, backpressure="error"))
    model.add_producer(1)
    assert [model.route(1, None, None) for _ in range(5)] == [0, 1, 2, 3, 0]
    assert model.route(1, b"customer-7", None) == kaelix.partition_for(b"customer-7", 4)
    assert model.route(1, b"customer-7", 2) == 2


def test_model_backpressure_and_groups() -> None:
    model = StreamModel(StreamConfig(partitions=2, capacity=4096, backpressure="drop_oldest"))
    model.add_producer(1)
    model.add_consumer(0, group="g")
    model.add_consumer(1, group="g")
    assert (model.assignment(0), model.assignment(1)) == ((0,), (1,))
    for _ in range(100):  # 64 frames of 64 bytes fill a partition
        model.send(1, b"x" * 8, None, 0)
    assert model.next_messages(0)[0] == model.partitions[0].published[36]
    assert model.deliver(0, 0).sequence == 36 and model.skipped(0) == 36
    model.remove_consumer(0)
    assert model.assignment(1) == (0, 1) and model.skipped(1) == 36


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"partitions": 0}, "partitions must be an int from 1 to 1024, got 0"),
        ({"capacity": 5000}, "capacity must be a power of two >= 4096, got 5000"),
        ({"backpressure": "later"}, "backpressure must be one of ('block', 'drop_oldest', "),
    ],
)
def test_config_refuses_bad_values(options: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"partitions": 1, "capacity": 4096, "backpressure": "error"}
    with pytest.raises(ValueError, match=re.escape(message)):
        StreamConfig(**{**values, **options})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# kaelix's Stream against the model
# --------------------------------------------------------------------------------------------


def test_kaelix_stream_matches_the_model() -> None:
    run_state_machine_as_test(StreamMachine, settings=FAST)


@pytest.mark.parametrize("policy", ["block", "error", "drop_oldest"])
def test_each_policy(policy: str) -> None:
    class OnePolicy(StreamMachine):
        POLICIES = (policy,)  # type: ignore[assignment]

    run_state_machine_as_test(OnePolicy, settings=FAST)


# --------------------------------------------------------------------------------------------
# Planted bugs: each found, with a short program
# --------------------------------------------------------------------------------------------


class LosesLastWaiting(StreamMachine):
    """Loses the message a poll returns when it was the last one waiting in its partition
    and not the partition's first (a classic off-by-one at the end of a log)."""

    def system_poll(self, consumer: int) -> DeliveredMessage | None:
        message = super().system_poll(consumer)
        lag = self._kaelix_consumers[consumer].lag
        if message is not None and message.sequence > 0 and lag[message.partition] == 0:
            return super().system_poll(consumer)
        return message


class RedeliversOnRebalance(StreamMachine):
    """When a group member leaves, the group's next poll returns again the last message the
    group received (at-least-once where exactly-once was promised)."""

    GROUPS = ("g1",)

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, DeliveredMessage] = {}
        self.replay: set[str] = set()

    def system_poll(self, consumer: int) -> DeliveredMessage | None:
        group = self._kaelix_consumers[consumer].group
        if group in self.replay:
            self.replay.discard(group)
            return self.last[group]
        message = super().system_poll(consumer)
        if group is not None and message is not None:
            self.last[group] = message
        return message

    def system_close_consumer(self, consumer: int) -> None:
        group = self._kaelix_consumers[consumer].group
        super().system_close_consumer(consumer)
        if group in self.last:
            self.replay.add(group)


class SwallowsBufferFull(StreamMachine):
    """Reports a refused send as sent: drops messages silently when a partition is full."""

    POLICIES = ("error",)

    def system_send(
        self, producer_id: int, payload: bytes, *, key: bytes | None, partition: int | None
    ) -> tuple[int, int] | None:
        got = super().system_send(producer_id, payload, key=key, partition=partition)
        return (0, 0) if got is None else got


def _shrunk_failure(machine: type[StreamMachine]) -> tuple[str, list[str]]:
    """Runs the machine until it fails; returns the error and the rules of the shrunk
    program (initialization included, invariant checks and teardown left out)."""
    with pytest.raises(AssertionError) as caught:
        run_state_machine_as_test(machine, settings=SEARCH)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    steps = [
        line
        for line in notes.splitlines()
        if line.startswith("state.")
        and not line.startswith(("state.teardown(", "state.assignments_agree("))
    ]
    return str(caught.value), steps


REPEATED = (
    "(a duplicate, or a message never sent)",
    "(a message lost, repeated or out of order)",
    "which it does not read",  # replayed to a member without that partition
)


@pytest.mark.parametrize(
    ("machine", "messages", "longest"),
    [
        (LosesLastWaiting, ("polled nothing, but the model has for it: part0: p1/part0/seq1",), 6),
        # Minimal: 6 steps (join, send, poll, restart, poll); the shrinker nearly always
        # gets within two of it.
        (RedeliversOnRebalance, REPEATED, 12),
        (SwallowsBufferFull, ("but the partition is full under 'error': the model refuses",), 4),
    ],
)
def test_planted_bug_is_found_with_a_short_program(
    machine: type[StreamMachine], messages: tuple[str, ...], longest: int
) -> None:
    error, steps = _shrunk_failure(machine)
    assert any(message in error for message in messages), error
    assert steps[0].startswith("state.open_stream(")
    assert len(steps) <= longest, "\n".join(steps)


# --------------------------------------------------------------------------------------------
# docs/plugin.md's example runs as written
# --------------------------------------------------------------------------------------------


def _doc_example() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- test: machine-example -->\n```python\n(.*?)```", text, re.S)
    assert block, "docs/plugin.md has the machine example"
    namespace: dict[str, Any] = {"__name__": "plugin_doc_example"}
    exec(compile(block[1], str(DOC), "exec"), namespace)
    return namespace


def test_doc_example_passes() -> None:
    example = _doc_example()
    assert example["TestTinyBroker"].settings.max_examples == 50
    run_state_machine_as_test(example["TinyBrokerMachine"], settings=FAST)


def test_doc_example_catches_a_broken_broker() -> None:
    example = _doc_example()

    class LatestFromTheStart(example["TinyBrokerMachine"]):  # type: ignore[misc]
        def system_consumer(
            self, consumer: int, *, group: str | None, start: str, partitions: Any
        ) -> None:
            super().system_consumer(consumer, group=group, start="earliest", partitions=partitions)

    error, steps = _shrunk_failure(LatestFromTheStart)
    # Send, join at "latest", poll: the broker hands over what was sent before the join.
    assert "but the model has nothing waiting for it in partition 0" in error, error
    assert len(steps) <= 7, "\n".join(steps)
