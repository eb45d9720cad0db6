"""The soak suite: messages pushed across processes through shared streams for a long time,
with every backpressure policy, checked message by message.

For each policy (``block``, ``error``, ``drop_oldest``) a shared stream of two partitions is
created, two producer processes send batches to it (each message's payload names its
producer, partition and sequence, and fills the rest with bytes derived from them), and this
process consumes: a `kaelix.DeliveryTracker` counts lost, duplicated, reordered and late
messages per (producer, partition), every payload is compared with what its header says it
must be (corrupted), and the resident memory of all three processes is sampled a few times a
second. A run passes when nothing was duplicated, reordered or corrupted, every message sent
was delivered (``drop_oldest``: delivered, or counted in ``consumer.skipped``: nothing lost
silently), and no process's memory grew between the first and the last quarter of the run.

``python -m kaelix.bench soak [--messages N]``: N messages per producer per policy (default
200,000 quick, 2,000,000 full). For a run by time: ``python -m kaelix.bench.suites.soak
--duration SECONDS`` (each policy runs that long; prints one line per policy and exits 1 on
any anomaly). `run_soak` is the same run as a function (tests/test_soak.py).

Imports the public kaelix API and the bench model; multiprocessing only when a run starts,
never numba at module level (the tracker compiles its kernels when first used).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import kaelix
from kaelix.bench._model import Case, Contender, Suite, SuiteConfig, Workload
from kaelix.bench.suites._options import message_count

Policy = Literal["block", "error", "drop_oldest"]
POLICIES: tuple[Policy, ...] = ("block", "error", "drop_oldest")
PRODUCERS = 2
PARTITIONS = 2
PAYLOAD = 64
BATCH = 256
CAPACITY = 64 * 1024
"""Small partitions, so that every policy's backpressure is exercised all the time."""
RSS_GROWTH_LIMIT = 16 * 1024 * 1024
"""Growth between the first and the last quarter of a run that counts as a leak."""
WARM_UP_S = 1.0
_ID = struct.Struct("<QQQ")


def payload_for(producer_id: int, partition: int, sequence: int) -> bytes:
    """The payload a soak producer sends as (producer_id, partition, sequence)."""
    fill = bytes([(sequence * 7 + producer_id * 13 + partition) & 0xFF]) * (PAYLOAD - _ID.size)
    return _ID.pack(producer_id, partition, sequence) + fill


@dataclass
class SoakReport:
    """What one policy's soak run saw.

    ``sent`` messages were accepted by the producers' sends; ``delivered`` arrived;
    ``skipped`` is what the consumer was told it lost (``drop_oldest`` only); ``lost``,
    ``duplicated``, ``reordered``, ``late`` come from the `kaelix.DeliveryTracker`;
    ``corrupted`` messages had a payload that does not match their header. ``rss`` holds
    (seconds since start, total resident bytes of the consumer and producers) samples;
    ``rss_growth`` is the highest sample of the last quarter minus the highest of the first,
    after a warm-up (WARM_UP_S seconds after the first message arrived, and at least the
    first quarter of the run: processes starting, imports, first allocations); a run too
    short for four samples after it reports no growth and says so."""

    policy: str
    seconds: float = 0.0
    sent: int = 0
    delivered: int = 0
    skipped: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    late: int = 0
    tail: int = 0
    corrupted: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)
    first_delivery_s: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def rss_growth(self) -> int:
        warm = self._warm_rss()
        if len(warm) < 4:
            return 0
        quarter = len(warm) // 4
        return max(warm[-quarter:]) - max(warm[:quarter])

    def _warm_rss(self) -> list[int]:
        if not self.rss or self.first_delivery_s is None:
            return []
        warm_from = max(self.first_delivery_s + WARM_UP_S, self.rss[-1][0] / 4)
        return [r for t, r in self.rss if t >= warm_from]

    @property
    def anomalies(self) -> list[str]:
        """What went wrong, in words (empty: the run passed)."""
        found = list(self.errors)
        unaccounted = self.sent - self.delivered - self.skipped
        if unaccounted:
            found.append(f"{unaccounted} messages sent but neither delivered nor reported skipped")
        if self.lost != self.skipped:
            found.append(f"tracker counts {self.lost} lost, the consumer was told {self.skipped}")
        for name in ("duplicated", "reordered", "late", "corrupted"):
            if getattr(self, name):
                found.append(f"{getattr(self, name)} {name}")
        if self.policy != "drop_oldest" and self.skipped:
            found.append(f"{self.skipped} skipped under {self.policy!r}")
        if self.rss_growth > RSS_GROWTH_LIMIT:
            found.append(f"resident memory grew by {self.rss_growth / 2**20:.1f} MiB")
        return found

    @property
    def ok(self) -> bool:
        return not self.anomalies

    def summary(self) -> str:
        rss = [r for _, r in self.rss] or [0]
        measured = len(self._warm_rss()) >= 4
        verdict = "ok" if self.ok else "FAILED: " + "; ".join(self.anomalies)
        return (
            f"soak {self.policy}: {self.sent:,} sent, {self.delivered:,} delivered, "
            f"{self.skipped:,} skipped (reported), lost {self.lost}, duplicated "
            f"{self.duplicated}, reordered {self.reordered}, corrupted {self.corrupted} in "
            f"{self.seconds:.1f} s; RSS {min(rss) / 2**20:.1f}-{max(rss) / 2**20:.1f} MiB over "
            f"{len(self.rss)} samples, "
            + (
                f"growth {self.rss_growth / 2**20:+.1f} MiB"
                if measured
                else "growth not measured (run too short after warm-up)"
            )
            + f": {verdict}"
        )


def _rss(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _produce(
    name: str, policy: str, messages: int | None, deadline: float | None, results: Any
) -> None:
    """A producer process: batches of BATCH payloads to alternating partitions until
    ``messages`` were sent or the deadline passed; reports how many it sent."""
    sent = 0
    try:
        with kaelix.Stream.open(name) as stream:
            producer = stream.producer()
            pid = producer.producer_id
            next_seq = [0] * PARTITIONS
            turn = 0
            while (messages is None or sent < messages) and (
                deadline is None or time.time() < deadline
            ):
                partition = turn % PARTITIONS
                turn += 1
                n = BATCH if messages is None else min(BATCH, messages - sent)
                first = next_seq[partition]
                payloads = [payload_for(pid, partition, first + i) for i in range(n)]
                done = 0
                while done < n:
                    try:
                        producer.send_batch(payloads[done:], partition=partition)
                        done = n
                    except kaelix.BufferFull as full:  # "error": retry what was refused
                        done += full.sent
                        time.sleep(0.0002)
                next_seq[partition] += n
                sent += n
            producer.close()
        results.put(("ok", sent))
    except BaseException as error:  # reported to the consumer, which fails the run
        results.put(("error", f"producer {os.getpid()}: {type(error).__name__}: {error}"))


def run_soak(
    policy: str,
    *,
    messages: int | None = None,
    duration_s: float | None = None,
    producers: int = PRODUCERS,
    timeout_s: float = 600.0,
) -> SoakReport:
    """Runs one policy's soak: ``producers`` processes sending ``messages`` each, or for
    ``duration_s`` seconds, to a shared stream this process consumes and checks.

    Raises:
        ValueError: an unknown policy, or neither or both of messages and duration_s.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if (messages is None) == (duration_s is None):
        raise ValueError("give exactly one of messages and duration_s")
    import multiprocessing  # here, not at import: listing the suites must stay light

    report = SoakReport(policy)
    tracker = kaelix.DeliveryTracker()
    tracker.update(kaelix.MessageBatch())  # compile the kernels before the clock starts
    name = f"kx-soak-{os.getpid()}-{policy}"
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    started = time.perf_counter()
    with kaelix.Stream(
        name,
        partitions=PARTITIONS,
        capacity=CAPACITY,
        backpressure=policy,
        shared=True,
        max_producers=producers + 1,
    ) as stream:
        consumer = stream.consumer()
        deadline = None if duration_s is None else time.time() + duration_s
        workers = [
            context.Process(
                target=_produce, args=(name, policy, messages, deadline, results), daemon=True
            )
            for _ in range(producers)
        ]
        for worker in workers:
            worker.start()
        pids = [w.pid for w in workers if w.pid is not None]
        finished = 0
        next_sample = 0.0
        give_up = time.perf_counter() + timeout_s
        while True:
            now = time.perf_counter()
            if now >= next_sample:
                total = _rss() + sum(_rss(p) for p in pids if finished < producers)
                report.rss.append((now - started, total))
                next_sample = now + 0.25
            batch = consumer.poll_batch(4096, timeout=0.05)
            if len(batch):
                if report.first_delivery_s is None:
                    report.first_delivery_s = time.perf_counter() - started
                tracker.update(batch)
                report.delivered += len(batch)
                report.corrupted += _count_corrupted(batch)
            while not results.empty() and finished < producers:
                kind, value = results.get()
                finished += 1
                if kind == "ok":
                    report.sent += value
                else:
                    report.errors.append(value)
            if (
                finished == producers
                and not len(batch)
                and report.delivered + consumer.skipped >= report.sent
            ):
                break
            if now > give_up:
                report.errors.append(f"gave up after {timeout_s} s")
                break
        report.skipped = consumer.skipped
        for worker in workers:
            worker.join(10)
        consumer.close()
    report.seconds = time.perf_counter() - started
    delivery = tracker.report()
    # Messages after the highest sequence a stream delivered were overwritten too (under
    # drop_oldest, another producer's newer messages can overwrite a stream's last ones):
    # the tracker cannot see them, the producers' counts can.
    report.tail = report.sent - delivery.expected
    report.lost = delivery.lost + report.tail
    report.duplicated = delivery.duplicated
    report.reordered = delivery.reordered
    report.late = delivery.late
    return report


def _count_corrupted(batch: kaelix.MessageBatch) -> int:
    bad = 0
    for message in batch:
        if message.payload != payload_for(message.producer_id, message.partition, message.sequence):
            bad += 1
    return bad


class SoakFailed(AssertionError):
    """A soak run saw lost, duplicated, reordered or corrupted messages, or memory growth."""


def _workload(policy: Policy, messages: int) -> Workload:
    def call() -> int:
        report = run_soak(policy, messages=messages)
        sys.stderr.write(report.summary() + "\n")
        if not report.ok:
            raise SoakFailed(report.summary())
        return int(report.seconds * 1e9)

    return Workload(
        call, messages=messages * PRODUCERS, nbytes=messages * PRODUCERS * PAYLOAD, timer="once"
    )


def _cases(config: SuiteConfig) -> Sequence[Case]:
    per_producer = message_count(config, 200_000 if config.quick else 2_000_000, "soak")
    return [
        Case(
            f"soak {policy}, {PRODUCERS} producer processes -> 1 consumer, {PAYLOAD} B",
            (
                Contender(
                    "kaelix",
                    lambda p=policy: _workload(p, per_producer),  # type: ignore[misc]
                    role="kaelix",
                    note="fails on any lost, duplicated, reordered or corrupted message or "
                    "memory growth; the summary line is on stderr",
                ),
            ),
            note="a correctness run, timed once: not a benchmark",
        )
        for policy in POLICIES
    ]


SUITE = Suite(
    name="soak",
    description="Long cross-process runs through shared streams with every backpressure "
    "policy: zero lost, duplicated, reordered or corrupted messages, no memory growth.",
    cases=_cases,
    options=("messages",),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kaelix.bench.suites.soak",
        description="Soak every backpressure policy for a duration (or a message count).",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--duration", type=float, help="seconds per policy")
    group.add_argument("--messages", type=int, help="messages per producer per policy")
    parser.add_argument("--policy", action="append", choices=POLICIES, help="repeatable")
    args = parser.parse_args(argv)
    failed = False
    for policy in args.policy or POLICIES:
        report = run_soak(policy, messages=args.messages, duration_s=args.duration)
        print(report.summary(), flush=True)
        failed |= not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
