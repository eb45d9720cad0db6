"""The kaelix exception tree.

Every error kaelix raises on purpose is a ``KaelixError``, and each also subclasses the
builtin it resembles, so ``except ValueError`` keeps working for code that predates kaelix.
The classes are defined by the compiled core (which must not import this package) and
re-exported here; this module imports nothing else.
"""

from kaelix._codec import DecodeError, FrameTooLarge, KaelixError
from kaelix._ring import PeerGone, RingClosed, RingEmpty, RingError, RingFull

__all__ = [
    "DecodeError",
    "FrameTooLarge",
    "KaelixError",
    "PeerGone",
    "RingClosed",
    "RingEmpty",
    "RingError",
    "RingFull",
]
