"""kaelix.connect.nats: the same streams across machines, through NATS JetStream.

``NatsStream`` is a kaelix stream held by a JetStream stream, with ``NatsProducer`` and
``NatsConsumer`` of the same surface as the in-memory ones; ``JetStreamSink`` and
``JetStreamSource`` bridge a local ``kaelix.Stream`` to and from one. Importing this module
needs nothing beyond kaelix: nats-py is imported when a ``NatsStream`` is made, with an
ImportError naming the ``nats`` extra when it is missing. ``kaelix.connect.nats.testing``
starts real servers for tests. See docs/connect.md. This module only re-exports.
"""

from kaelix.connect.nats._bridge import JetStreamSink, JetStreamSource
from kaelix.connect.nats._common import FORMAT, MSG_ID
from kaelix.connect.nats._consumer import NatsConsumer
from kaelix.connect.nats._jetstream import NatsStream
from kaelix.connect.nats._producer import NatsProducer

__all__ = [
    "FORMAT",
    "MSG_ID",
    "JetStreamSink",
    "JetStreamSource",
    "NatsConsumer",
    "NatsProducer",
    "NatsStream",
]
