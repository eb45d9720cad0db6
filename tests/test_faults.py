"""kaelix.testing.FaultPlan: what each fault does, exactly, and that the report it predicts
is the one check_delivery gives, over thousands of plans on every ordering."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaelix
from kaelix import Message, MessageBatch
from kaelix.testing import FAULT_KINDS, Fault, FaultPlan
from kaelix.testing.strategies import message_batches, message_sequences, scenarios

ORDERINGS = ("partition", "producer", "global", "none")


def one_stream(count: int, *, payload: bytes = b"m") -> MessageBatch:
    return MessageBatch.from_messages(Message(payload, sequence=i) for i in range(count))


def two_streams(count: int) -> MessageBatch:
    """Messages alternating between partitions 0 and 1 of producer 7."""
    return MessageBatch.from_messages(
        Message(b"x", partition=i % 2, producer_id=7, sequence=i // 2) for i in range(count)
    )


def sequences(batch: MessageBatch) -> list[tuple[int, int]]:
    return list(zip(batch.partition.tolist(), batch.sequence.tolist(), strict=True))


def counts(report: kaelix.DeliveryReport) -> dict[str, int]:
    names = ("expected", "delivered", "lost", "duplicated", "reordered", "corrupted")
    return {name: getattr(report, name) for name in names if getattr(report, name)}


def apply(plan: FaultPlan, batch: MessageBatch, **options: Any) -> tuple[MessageBatch, Any]:
    observed, expected = plan.apply(batch, **options)
    assert kaelix.check_delivery(batch, observed, **options) == expected
    return observed, expected


# --------------------------------------------------------------------------------------------
# Each kind, by hand
# --------------------------------------------------------------------------------------------


def test_no_fault_delivers_the_same_bytes() -> None:
    sent = two_streams(6)
    observed, expected = apply(FaultPlan(), sent)
    assert observed == sent and observed.to_bytes() == sent.to_bytes()
    assert expected and counts(expected) == {"expected": 6, "delivered": 6}


def test_a_drop_loses_that_message() -> None:
    observed, expected = apply(FaultPlan(faults=(Fault("drop", 2),)), one_stream(5))
    assert [s for _, s in sequences(observed)] == [0, 1, 3, 4]
    assert counts(expected) == {"expected": 5, "delivered": 4, "lost": 1}
    assert expected.examples["lost"] == (kaelix.Example(0, 0, 2, 2),)


def test_a_duplicate_arrives_again_after_the_message_distance_rows_later() -> None:
    observed, expected = apply(FaultPlan(faults=(Fault("duplicate", 1, 2),)), one_stream(5))
    assert [s for _, s in sequences(observed)] == [0, 1, 2, 3, 1, 4]
    assert counts(expected) == {"expected": 5, "delivered": 5, "duplicated": 1}
    assert expected.examples["duplicated"] == (kaelix.Example(0, 0, 1, 4),)


def test_a_duplicate_near_the_end_arrives_last() -> None:
    observed, _ = apply(FaultPlan(faults=(Fault("duplicate", 3, 8),)), one_stream(5))
    assert [s for _, s in sequences(observed)] == [0, 1, 2, 3, 4, 3]


def test_a_reorder_swaps_with_the_next_message_of_its_own_stream() -> None:
    # Rows alternate partitions: row 1 (partition 1, seq 0) swaps with row 3 (partition 1,
    # seq 1), two rows later; partition 0 is untouched.
    observed, expected = apply(FaultPlan(faults=(Fault("reorder", 1, 2),)), two_streams(6))
    assert sequences(observed) == [(0, 0), (1, 1), (0, 1), (1, 0), (0, 2), (1, 2)]
    assert counts(expected) == {"expected": 6, "delivered": 6, "reordered": 1}
    assert expected.examples["reordered"] == (kaelix.Example(7, 1, 0, 3),)


def test_a_reorder_whose_partner_is_too_far_does_nothing() -> None:
    sent = two_streams(6)
    observed, expected = apply(FaultPlan(faults=(Fault("reorder", 1, 1),)), sent)
    assert observed == sent and expected


def test_a_reorder_onto_a_dropped_message_does_nothing_more() -> None:
    plan = FaultPlan(faults=(Fault("reorder", 0, 1), Fault("drop", 1)))
    observed, expected = apply(plan, one_stream(4))
    assert [s for _, s in sequences(observed)] == [0, 2, 3]
    assert counts(expected) == {"expected": 4, "delivered": 3, "lost": 1}


def test_a_delay_moves_a_message_after_the_one_distance_rows_later() -> None:
    observed, expected = apply(FaultPlan(faults=(Fault("delay", 0, 2),)), two_streams(6))
    # Row 0 (partition 0, seq 0) now arrives after row 2 (partition 0, seq 1): reordered
    # within partition 0 (and under global order), not under "none".
    assert sequences(observed) == [(1, 0), (0, 1), (0, 0), (1, 1), (0, 2), (1, 2)]
    assert expected.reordered == 1
    assert apply(FaultPlan(faults=(Fault("delay", 0, 2),)), two_streams(6), ordering="none")[1]


def test_a_delay_past_other_streams_only_is_no_reorder_within_a_partition() -> None:
    plan = FaultPlan(faults=(Fault("delay", 0, 1),))
    _, by_partition = apply(plan, two_streams(4))
    _, by_all = apply(plan, two_streams(4), ordering="global")
    assert by_partition and (by_all.reordered, by_all.examples["reordered"]) == (
        1,
        (kaelix.Example(7, 0, 0, 1),),
    )


@pytest.mark.parametrize("payload", [b"payload", b""])
def test_a_corrupted_message_is_a_valid_frame_with_other_content(payload: bytes) -> None:
    sent = one_stream(3, payload=payload)
    observed, expected = apply(FaultPlan(faults=(Fault("corrupt", 1),)), sent)
    assert counts(expected) == {"expected": 3, "delivered": 3, "corrupted": 1}
    changed = observed[1]
    assert changed != sent[1] and observed.checksum[1] != sent.checksum[1]
    if payload:
        assert changed.payload == bytes([payload[0] ^ 0xFF]) + payload[1:]
        assert changed.timestamp_ns == sent[1].timestamp_ns
    else:
        assert changed.timestamp_ns == sent[1].timestamp_ns ^ 1
    kaelix.validate_message_invariants(changed)  # a sound frame: its CRC was resealed
    assert observed[0] == sent[0] and observed[2] == sent[2]


def test_every_copy_of_a_corrupted_duplicated_message_is_corrupted() -> None:
    plan = FaultPlan(faults=(Fault("corrupt", 0), Fault("duplicate", 0, 1)))
    observed, expected = apply(plan, one_stream(3))
    assert [s for _, s in sequences(observed)] == [0, 1, 0, 2]
    assert observed.checksum[0] == observed.checksum[2] != one_stream(3).checksum[0]
    assert counts(expected) == {"expected": 3, "delivered": 3, "duplicated": 1, "corrupted": 1}


def test_a_dropped_message_is_not_duplicated_delayed_or_corrupted() -> None:
    kinds = ("duplicate", "delay", "corrupt", "reorder")
    plan = FaultPlan(faults=(Fault("drop", 1), *(Fault(k, 1, 1) for k in kinds)))
    observed, expected = apply(plan, one_stream(3))
    assert [s for _, s in sequences(observed)] == [0, 2]
    assert counts(expected) == {"expected": 3, "delivered": 2, "lost": 1}


def test_faults_past_the_end_of_the_batch_do_nothing() -> None:
    sent = one_stream(3)
    plan = FaultPlan(faults=(Fault("drop", 3), Fault("corrupt", 100)))
    assert plan.resolve(3) == ()
    assert apply(plan, sent)[0] == sent


def test_an_empty_batch_stays_empty() -> None:
    observed, expected = apply(FaultPlan(drop=1.0, faults=(Fault("drop", 0),)), MessageBatch())
    assert len(observed) == 0 and expected and expected.expected == 0


def test_a_plan_that_drops_everything_loses_everything() -> None:
    observed, expected = apply(FaultPlan(drop=1.0), two_streams(5))
    assert len(observed) == 0
    assert counts(expected) == {"expected": 5, "lost": 5}


def test_examples_follow_max_examples() -> None:
    plan = FaultPlan(faults=tuple(Fault("drop", i) for i in range(0, 10, 2)))
    _, expected = apply(plan, one_stream(10), max_examples=2)
    assert expected.lost == 5
    assert [e.sequence for e in expected.examples["lost"]] == [0, 2]


# --------------------------------------------------------------------------------------------
# Rates and seeds
# --------------------------------------------------------------------------------------------


def test_rates_are_drawn_from_the_seed_and_nothing_else() -> None:
    sent = two_streams(400)
    plan = FaultPlan(drop=0.05, duplicate=0.05, reorder=0.05, corrupt=0.05, delay=0.05, seed=9)
    first, report = apply(plan, sent)
    again, report_again = plan.apply(sent)
    assert first.to_bytes() == again.to_bytes() and report == report_again
    other, _ = FaultPlan(drop=0.05, seed=10).apply(sent)
    assert other.to_bytes() != first.to_bytes()
    resolved = plan.resolve(400)
    assert {fault.kind for fault in resolved} == set(FAULT_KINDS)
    for kind in FAULT_KINDS:  # about 20 of each in 400 at 5 %
        assert 5 <= sum(fault.kind == kind for fault in resolved) <= 45
    assert all(1 <= fault.distance <= plan.max_distance for fault in resolved)


@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("seed", range(6))
def test_rate_plans_on_large_runs_match_check_delivery(ordering: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    messages = [
        Message(b"p", partition=int(p), producer_id=int(p) % 3, sequence=i)
        for i, p in enumerate(rng.integers(0, 6, 3000))
    ]
    sent = MessageBatch.from_messages(messages)
    rate = [0.001, 0.01, 0.1][seed % 3]
    plan = FaultPlan(
        drop=rate, duplicate=rate, reorder=rate, corrupt=rate, delay=rate, seed=seed,
        max_distance=64,
    )  # fmt: skip
    _, expected = apply(plan, sent, ordering=ordering)
    assert expected.expected == 3000


# --------------------------------------------------------------------------------------------
# Against check_delivery, thousands of plans
# --------------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=1000)
@given(scenarios(max_faults=6), st.sampled_from(ORDERINGS), st.integers(0, 6))
def test_the_report_a_plan_predicts_is_check_delivery_s(
    scenario: Any, ordering: str, max_examples: int
) -> None:
    observed, expected = scenario.plan.apply(
        scenario.sent, ordering=ordering, max_examples=max_examples
    )
    assert observed == scenario.observed
    assert (
        kaelix.check_delivery(scenario.sent, observed, ordering=ordering, max_examples=max_examples)
        == expected
    )


@settings(deadline=None, max_examples=300)
@given(
    message_batches(
        messages=st.builds(
            Message,
            st.binary(max_size=3),
            partition=st.integers(0, 1),
            producer_id=st.integers(0, 1),
            sequence=st.integers(0, 3),
        ),
        max_size=12,
    ),
    st.lists(
        st.builds(Fault, st.sampled_from(FAULT_KINDS), st.integers(0, 11), st.integers(1, 4)),
        max_size=5,
    ),
    st.sampled_from(ORDERINGS),
)
def test_plans_on_batches_with_keys_sent_twice_match_check_delivery(
    sent: MessageBatch, found: list[Fault], ordering: str
) -> None:
    """A key sent twice counts once, by its first copy; the plan's report follows."""
    apply(FaultPlan(faults=tuple(found)), sent, ordering=ordering)


@settings(deadline=None, max_examples=100)
@given(message_sequences(max_size=30), st.integers(0, 2**32), st.floats(0, 0.5))
def test_drawn_plans_match_check_delivery(sent: MessageBatch, seed: int, rate: float) -> None:
    plan = FaultPlan(
        drop=rate, duplicate=rate / 2, reorder=rate, corrupt=rate / 3, delay=rate, seed=seed
    )
    apply(plan, sent)


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"drop": 1.5}, ValueError, "FaultPlan drop must be a rate from 0 to 1, got 1.5"),
        ({"corrupt": -0.1}, ValueError, "FaultPlan corrupt must be a rate from 0 to 1"),
        ({"delay": float("nan")}, ValueError, "FaultPlan delay must be a rate"),
        ({"reorder": "0.1"}, TypeError, "FaultPlan reorder must be a rate (float), got str"),
        ({"duplicate": True}, TypeError, "FaultPlan duplicate must be a rate (float), got bool"),
        ({"max_distance": 0}, ValueError, "FaultPlan max_distance must be from 1 to"),
        ({"seed": -1}, ValueError, "FaultPlan seed must be >= 0, got -1"),
        ({"faults": "drop"}, TypeError, "FaultPlan faults must be Faults, got str"),
        ({"faults": [("drop", 1)]}, TypeError, "FaultPlan faults must be Faults, got tuple"),
    ],
)
def test_bad_plans_are_refused_with_what_was_wrong(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match="^" + __import__("re").escape(message)):
        FaultPlan(**kwargs)


def test_bad_faults_and_bad_calls_are_refused() -> None:
    with pytest.raises(ValueError, match="Fault kind must be one of"):
        Fault("lose", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Fault index must be >= 0, got -1"):
        Fault("drop", -1)
    with pytest.raises(ValueError, match="Fault distance must be from 1"):
        Fault("delay", 0, 0)
    with pytest.raises(TypeError, match=r"FaultPlan\.apply takes a MessageBatch, got list"):
        FaultPlan().apply([Message(b"")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ordering must be one of"):
        FaultPlan().apply(one_stream(1), ordering="total")
    with pytest.raises(ValueError, match="max_examples must be >= 0"):
        FaultPlan().apply(one_stream(1), max_examples=-1)


def test_a_plan_given_a_list_of_faults_keeps_a_tuple_and_is_hashable() -> None:
    plan = FaultPlan(faults=[Fault("drop", 0)])  # type: ignore[arg-type]
    assert plan.faults == (Fault("drop", 0),) and hash(plan) == hash(FaultPlan(faults=plan.faults))
    assert not plan.empty and FaultPlan().empty and not FaultPlan(delay=0.1).empty
