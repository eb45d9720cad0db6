"""kaelix: fast, verifiable in-memory message streaming for Python.

This module only re-exports the public API; see the README and ``docs/`` for the tour.
"""

from kaelix._batch import MessageBatch
from kaelix._codec import (
    DEFAULT_MAX_FRAME_SIZE,
    FORMAT_VERSION,
    HEADER_SIZE,
    MAX_FRAME_SIZE_LIMIT,
    MAX_HEADER_COUNT,
    MAX_HEADER_NAME_BYTES,
    Message,
    crc32c,
    crc32c_implementation,
    decode,
    decode_batch,
    encode,
    encode_batch,
)
from kaelix._hdr import HdrHistogram
from kaelix._queue import JoinableQueue, Queue, QueueEmpty, QueueFull
from kaelix._rings import Ring, SharedRing
from kaelix._stream import Consumer, Producer, Receipts, Stream, partition_for
from kaelix.errors import (
    BufferFull,
    DecodeError,
    FrameTooLarge,
    HdrDecodeError,
    KaelixError,
    PeerGone,
    RingClosed,
    RingEmpty,
    RingError,
    RingFull,
    SendTimeout,
    StreamClosed,
    StreamError,
    StreamExists,
    StreamNotFound,
    ValueOutOfRange,
)
from kaelix.validate import (
    DeliveryReport,
    DeliveryTracker,
    Example,
    InvariantViolation,
    LatencyReport,
    check_delivery,
    latency_report,
    validate_message_invariants,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAX_FRAME_SIZE_LIMIT",
    "MAX_HEADER_COUNT",
    "MAX_HEADER_NAME_BYTES",
    "BufferFull",
    "Consumer",
    "DecodeError",
    "DeliveryReport",
    "DeliveryTracker",
    "Example",
    "FrameTooLarge",
    "HdrDecodeError",
    "HdrHistogram",
    "InvariantViolation",
    "JoinableQueue",
    "KaelixError",
    "LatencyReport",
    "Message",
    "MessageBatch",
    "PeerGone",
    "Producer",
    "Queue",
    "QueueEmpty",
    "QueueFull",
    "Receipts",
    "Ring",
    "RingClosed",
    "RingEmpty",
    "RingError",
    "RingFull",
    "SendTimeout",
    "SharedRing",
    "Stream",
    "StreamClosed",
    "StreamError",
    "StreamExists",
    "StreamNotFound",
    "ValueOutOfRange",
    "__version__",
    "check_delivery",
    "crc32c",
    "crc32c_implementation",
    "decode",
    "decode_batch",
    "encode",
    "encode_batch",
    "latency_report",
    "partition_for",
    "validate_message_invariants",
]
