"""kaelix.testing.strategies (valid values): what they draw is valid, they reach the edges,
they shrink to minimal examples, and bad arguments are refused with what was wrong."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import kaelix
from kaelix import Message, MessageBatch
from kaelix.testing import FaultPlan
from kaelix.testing.strategies import (
    Scenario,
    faults,
    headers,
    keys,
    message_batches,
    message_sequences,
    messages,
    payloads,
    scenarios,
)

ORDERINGS = ("partition", "producer", "global", "none")
U64_MAX = 2**64 - 1
quick = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])


def runs(batch: MessageBatch) -> dict[tuple[int, int], list[int]]:
    """Each (producer, partition)'s sequences, in send order."""
    out: dict[tuple[int, int], list[int]] = defaultdict(list)
    for m in batch:
        out[m.producer_id, m.partition].append(m.sequence)
    return out


# --------------------------------------------------------------------------------------------
# Validity
# --------------------------------------------------------------------------------------------


@quick
@given(messages())
def test_messages_are_valid_and_survive_the_frame_format(message: Message) -> None:
    kaelix.validate_message_invariants(message, now_ns=2**63)  # any int64 timestamp is valid
    assert kaelix.decode(kaelix.encode(message)) == message


@quick
@given(headers(max_headers=6, max_name_size=255))
def test_header_names_fit_the_format(entries: dict[str, bytes]) -> None:
    assert len(entries) <= 6
    for name in entries:
        assert 1 <= len(name.encode()) <= kaelix.MAX_HEADER_NAME_BYTES
    kaelix.validate_message_invariants(Message(b"", headers=entries))


@quick
@given(message_batches(max_size=8))
def test_message_batches_hold_the_messages_drawn(batch: MessageBatch) -> None:
    assert len(batch) <= 8
    assert MessageBatch.from_bytes(batch.to_bytes()) == batch


@quick
@given(
    message_sequences(
        producers=st.integers(1, 4), partitions=3, first_sequence=st.integers(0, U64_MAX)
    ),
    st.sampled_from(ORDERINGS),
)
def test_sequences_run_consecutively_per_stream(sent: MessageBatch, ordering: str) -> None:
    producers = {m.producer_id for m in sent}
    assert len(producers) <= 4 and {m.partition for m in sent} <= {0, 1, 2}
    for sequences in runs(sent).values():
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
        assert sequences[-1] <= U64_MAX
    assert sorted(sent.timestamp_ns.tolist()) == sent.timestamp_ns.tolist()
    assert kaelix.check_delivery(sent, sent, ordering=ordering)  # type: ignore[arg-type]


@quick
@given(message_sequences(first_sequence=U64_MAX - 3, min_size=10, max_size=10, partitions=1))
def test_a_first_sequence_near_the_top_is_clamped_so_none_wraps(sent: MessageBatch) -> None:
    assert max(sent.sequence.tolist()) <= U64_MAX
    assert kaelix.check_delivery(sent, sent)


@quick
@given(scenarios())
def test_scenarios_hold_what_their_plan_makes_of_their_sequence(scenario: Scenario) -> None:
    observed, expected = scenario.plan.apply(scenario.sent)
    assert (observed, expected) == (scenario.observed, scenario.expected)
    assert all(fault.index < len(scenario.sent) for fault in scenario.plan.faults)


def test_from_type_draws_kaelix_types_through_the_entry_point() -> None:
    assert isinstance(find(st.from_type(Message), lambda m: True), Message)
    assert isinstance(find(st.from_type(MessageBatch), lambda b: True), MessageBatch)
    assert find(st.from_type(FaultPlan), lambda p: True) == FaultPlan()


# --------------------------------------------------------------------------------------------
# Edges and shrinking
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        lambda m: m.partition == 2**32 - 1,
        lambda m: m.sequence == U64_MAX,
        lambda m: m.producer_id == U64_MAX,
        lambda m: m.timestamp_ns == -(2**63),
        lambda m: m.key == b"",
        lambda m: m.key is None and len(m.headers) == 4,
    ],
)
def test_messages_reach_the_edges_of_every_field(condition: Any) -> None:
    seeded = random.Random(0)  # a fixed search: the same outcome on every run
    find(messages(), condition, settings=settings(max_examples=5000, database=None), random=seeded)


def test_messages_shrink_to_the_simplest() -> None:
    found = find(messages(), lambda m: len(m.payload) >= 3, settings=settings(database=None))
    assert found == Message(b"\x00\x00\x00")


def test_sequences_shrink_to_one_producer_one_partition_and_few_messages() -> None:
    # What a failing test of a consumer would see: the smallest sequence with two streams.
    found = find(
        message_sequences(),
        lambda b: len(runs(b)) >= 2,
        settings=settings(database=None, max_examples=2000),
    )
    assert len(found) == 2
    assert [m.payload for m in found] == [b"", b""] and [m.key for m in found] == [None, None]
    assert [m.sequence for m in found] == [0, 0]


def test_scenarios_shrink_to_one_message_and_one_fault() -> None:
    found = find(
        scenarios(),
        lambda s: s.expected.lost > 0,
        settings=settings(database=None, max_examples=2000),
    )
    assert len(found.sent) == 1 and found.plan.faults == (kaelix.testing.Fault("drop", 0, 1),)
    found = find(
        scenarios(),
        lambda s: s.expected.reordered > 0,
        settings=settings(database=None, max_examples=2000),
    )
    assert len(found.sent) == 2 and len(found.plan.faults) == 1


def test_faults_shrink_to_none() -> None:
    assert find(faults(), lambda p: True) == FaultPlan()
    plan = find(faults(kinds=["corrupt", "delay"]), lambda p: len(p.faults) >= 1)
    assert plan.faults == (kaelix.testing.Fault("corrupt", 0, 1),)


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: payloads(min_size=5, max_size=2), "max_size=2 must be at least min_size=5"),
        (lambda: payloads(max_size=-1), "max_size=-1 must be at least 0"),
        (lambda: keys(allow_none=1), "allow_none=1 must be a bool"),  # type: ignore[arg-type]
        (lambda: headers(max_name_size=300), "max_name_size=300 must be from 1 to 255"),
        (lambda: messages(payloads=b"x"), "payloads=b'x' must be a hypothesis strategy"),  # type: ignore[arg-type]
        (lambda: message_batches(min_size=2.5), "min_size=2.5 must be an int, not float"),  # type: ignore[arg-type]
        (lambda: message_sequences(producers=0), "producers=0 must be from 1 to 256"),
        (lambda: message_sequences(partitions=-2), "partitions=-2 must be from 1 to"),
        (lambda: faults(kinds="drop"), "did you mean kinds=['drop']?"),
        (lambda: faults(kinds=["lose"]), "unknown: ['lose']"),
        (lambda: faults(kinds=[]), "must name at least one of"),
        (lambda: faults(max_distance=0), "max_distance=0 must be from 1 to"),
        (lambda: scenarios(ordering="total"), "ordering='total' must be"),
    ],
)
def test_bad_arguments_are_refused_when_the_strategy_is_built(build: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=__import__("re").escape(message)):
        build()


def test_a_drawn_count_out_of_range_is_refused_when_drawn() -> None:
    strategy = message_sequences(producers=st.just(0))
    with pytest.raises(InvalidArgument, match="producers=0 must be from 1 to 256"):
        find(strategy, lambda b: True)
