"""The kaelix exception tree.

Every error kaelix raises on purpose is a ``KaelixError``, and each also subclasses the
builtin it resembles, so ``except ValueError`` keeps working for code that predates kaelix.
The codec and ring classes are defined by the compiled core (which must not import this
package) and re-exported here; the stream classes are defined here. This module imports
nothing else from kaelix.
"""

import queue

from kaelix._codec import DecodeError, FrameTooLarge, KaelixError
from kaelix._hdr import HdrDecodeError, ValueOutOfRange
from kaelix._ring import PeerGone, RingClosed, RingEmpty, RingError, RingFull


class StreamError(KaelixError):
    """Base of the errors a ``Stream``, ``Producer`` or ``Consumer`` raises."""


class StreamClosed(StreamError, ValueError):
    """The stream (or this producer or consumer) is closed: nothing more can be sent, and
    there is nothing more to receive."""


class SendTimeout(StreamError, TimeoutError):
    """``backpressure="block"``: the slowest consumer made no room before the timeout.
    ``sent`` is how many messages of the call were sent (``send_batch``; 0 for ``send``)."""

    def __init__(self, message: str, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


class BufferFull(StreamError, queue.Full):
    """``backpressure="error"``: the partition has no room for the message now. ``sent`` is
    how many messages of the call were sent (``send_batch``; 0 for ``send``)."""

    def __init__(self, message: str, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


class QueueFull(RingFull):
    """``Queue.put`` found no room (``queue.Full``). ``sent`` is how many items of a
    ``put_many`` went in before it (0 for ``put``)."""

    def __init__(self, message: str, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


class QueueEmpty(RingEmpty):
    """``Queue.get`` found nothing (``queue.Empty``)."""


class ConnectError(KaelixError, ConnectionError):
    """``kaelix.connect``: the remote engine (a NATS server) could not be reached within the
    configured timeout, or the connection to it closed for good. The message names the
    servers tried and the last error seen."""


class StreamNotFound(StreamError, FileNotFoundError):
    """``Stream.open``: no shared stream of that name (never made, or closed since)."""


class StreamExists(StreamError, FileExistsError):
    """``Stream(name, shared=True)``: a shared stream of that name exists already."""


__all__ = [
    "BufferFull",
    "ConnectError",
    "DecodeError",
    "FrameTooLarge",
    "HdrDecodeError",
    "KaelixError",
    "PeerGone",
    "QueueEmpty",
    "QueueFull",
    "RingClosed",
    "RingEmpty",
    "RingError",
    "RingFull",
    "SendTimeout",
    "StreamClosed",
    "StreamError",
    "StreamExists",
    "StreamNotFound",
    "ValueOutOfRange",
]
