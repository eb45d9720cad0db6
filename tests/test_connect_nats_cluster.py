"""kaelix.connect.nats (issue 11) on a three-node JetStream cluster: a stream replicated on
every node, 100,000 messages sent while the node leading the stream is killed (SIGKILL) and
restarted, and the validators' proof that nothing JetStream acknowledged was lost and that
the producer's retries across the failover were deduplicated by the server.

The cluster is real nats-server processes on loopback ports with temporary storage
(``kaelix.connect.nats.testing.NatsCluster``), stopped and removed at the end whatever
happens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from kaelix import DeliveryTracker, MessageBatch
from kaelix.connect.nats import NatsConsumer, NatsStream
from kaelix.connect.nats.testing import NatsCluster, ServerNotFound, server_binary

try:
    server_binary()
    import nats  # noqa: F401  (the client must be there too)
except (ServerNotFound, ImportError) as exc:  # pragma: no cover - the test extra has both
    pytest.skip(f"no NATS server or client: {exc}", allow_module_level=True)

MESSAGES = 100_000
BATCH = 2_000
PARTITIONS = 4


@pytest.fixture(scope="module")
def cluster() -> Iterator[NatsCluster]:
    with NatsCluster(3) as started:
        yield started


def payload(partition: int, sequence: int) -> bytes:
    """What the test sends as message (partition, sequence): checked on arrival."""
    return b"%d/%d;" % (partition, sequence) + b"." * 40


def read_everything(consumer: NatsConsumer, count: int, timeout: float) -> list[MessageBatch]:
    batches = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < count and time.monotonic() < deadline:
        batch = consumer.poll_batch(4096, timeout=1.0)
        if len(batch):
            batches.append(batch)
            got += len(batch)
    return batches


def check_payloads(batches: list[MessageBatch]) -> None:
    for batch in batches:
        keys = zip(batch.partition.tolist(), batch.sequence.tolist(), strict=True)
        for i, (p, s) in enumerate(keys):
            assert bytes(batch.payload(i)) == payload(p, s)


def test_leader_killed_and_restarted_during_100k_messages(cluster: NatsCluster) -> None:
    with NatsStream("failover", cluster.urls, partitions=PARTITIONS, replicas=3) as probe:
        leader = probe.info()["leader"]
    victim = int(leader.rsplit("-", 1)[1])  # the servers are named kaelix-0 .. kaelix-2
    # The client talks to the leader's node first: killing it cuts the connection with
    # publishes in flight, some stored and unacknowledged, which the producer sends again.
    urls = [cluster.urls[victim]] + [u for i, u in enumerate(cluster.urls) if i != victim]
    stream = NatsStream(
        "failover",
        urls,
        request_timeout=1.0,
        connect_timeout=20.0,
        connect_options={"dont_randomize": True},
    )
    try:
        producer = stream.producer()
        live = stream.consumer(group="live", ack_wait=5.0)
        tracker = DeliveryTracker()
        received: list[MessageBatch] = []
        stop = threading.Event()

        everything = threading.Event()

        def consume() -> None:
            # The tracker is this thread's alone: it counts each message once, however
            # many times it is redelivered, and says when every one has come.
            while not stop.is_set():
                batch = live.poll_batch(4096, timeout=0.5)
                if len(batch):
                    tracker.update(batch)
                    received.append(batch)
                    if tracker.report().delivered >= MESSAGES:
                        everything.set()

        reader = threading.Thread(target=consume)
        reader.start()
        began = time.monotonic()
        sequences = [0] * PARTITIONS
        sent = [0]
        times: dict[str, float] = {}

        def fail_over() -> None:
            """Kills the leader while a batch is in flight (publishes unacknowledged, some
            stored, some not), and brings it back three seconds later."""
            while sent[0] < MESSAGES // 4 and not stop.is_set():
                time.sleep(0.01)
            time.sleep(0.05)
            cluster.kill(victim)
            times["killed"] = time.monotonic() - began
            time.sleep(3.0)
            cluster.restart(victim, wait=False)
            times["restarted"] = time.monotonic() - began

        killer = threading.Thread(target=fail_over)
        killer.start()
        try:
            for n in range(MESSAGES // BATCH):
                p = n % PARTITIONS
                first = sequences[p]
                receipts = producer.send_batch(
                    [payload(p, first + i) for i in range(BATCH)], partition=p, timeout=60
                )
                # Returned: every message of the batch is acknowledged by a quorum.
                assert receipts.runs == ((p, first, BATCH),)
                sequences[p] += BATCH
                sent[0] += BATCH
            killer.join(30)
            sent_s = time.monotonic() - began
            everything.wait(60)
        finally:
            stop.set()
            reader.join(30)
        live_report = tracker.report()
        print(
            f"\n100,000 messages sent in {sent_s:.1f} s, node kaelix-{victim} (the stream "
            f"leader) killed at {times['killed']:.1f} s and restarted at "
            f"{times['restarted']:.1f} s; "
            f"{producer.duplicates} retried publish(es) dropped by JetStream as duplicates; "
            f"{stream.reconnects} client reconnect(s)\nlive consumer: {live_report.summary()}"
        )
        # The live consumer got every acknowledged message (at least once: redeliveries of
        # messages whose acks were lost in the failover are the only duplicates allowed).
        assert live_report.lost == 0 and live_report.unexpected == 0, live_report.summary()
        assert live_report.delivered == MESSAGES
        check_payloads(received)

        # What JetStream stored: every message exactly once, the retries deduplicated.
        cluster_state = stream.info()
        assert cluster_state["messages"] == MESSAGES, cluster_state
        audit = stream.consumer()  # ephemeral: reads the whole stream from the start
        stored = read_everything(audit, MESSAGES, timeout=60)
        stored_tracker = DeliveryTracker(ordering="none")
        for batch in stored:
            stored_tracker.update(batch)
        stored_report = stored_tracker.report()
        print(f"stored: {stored_report.summary()}")
        assert stored_report.ok, stored_report.summary()
        assert stored_report.delivered == MESSAGES
        check_payloads(stored)

        # A producer that sends again what was stored before the failover (restarted, say)
        # is deduplicated by the new leader too: the message ids survived the failover.
        again = MessageBatch.concat(stored)[: MESSAGES // 2 : 7]
        assert stream.forward(again) == len(again)
        assert stream.info()["messages"] == MESSAGES
    finally:
        stream.delete()
