"""What the modules of kaelix.connect.nats share: names, limits, argument checks, and the
sorting of nats-py's exceptions into what kaelix does about them. Imports the standard
library only."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Final, Literal, TypeAlias, TypeVar

T = TypeVar("T")
Start: TypeAlias = Literal["earliest", "latest"]
AckMode: TypeAlias = Literal["auto", "manual"]
Storage: TypeAlias = Literal["file", "memory"]

MSG_ID: Final = "Nats-Msg-Id"
"""The NATS header JetStream deduplicates publishes by."""

FORMAT: Final = "kaelix-frame/1"
"""What a kaelix-made stream's metadata says its message bodies are."""

_META_PARTITIONS: Final = "kaelix.partitions"
_META_FORMAT: Final = "kaelix.format"
_NAME_RULE: Final = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")
_PREFIX_RULE: Final = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\Z")
_MAX_PARTITIONS: Final = 1024
_FETCH_SLICE: Final = 2.0  # a pull request lives at most this long (then another is made)
_MIN_FETCH: Final = 0.005  # a poll with less time left than this asks with no_wait
_STATUS: Final = "Status"  # the header of a pull request's status replies
_UNSET: Any = object()  # "not given": the stream's default applies
_WINDOW: Final = 2048  # publishes a producer keeps in flight: up to two windows


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not _NAME_RULE.match(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: JetStream names take 1 to 128 letters, digits, "
            f"'-' or '_' (no '.', spaces or wildcards)"
        )
    return value


def _positive_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{what} must be > 0 seconds, got {value!r}")
    return float(value)


def _count(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}, got {value}")
    return value


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


class _Errors:
    """nats-py's exception classes, sorted by what kaelix does about them."""

    def __init__(self, nats: Any) -> None:
        self.closed = (nats.errors.ConnectionClosedError,)
        self.api = nats.js.errors.APIError
        self.not_found = nats.js.errors.NotFoundError
        # Worth another try: no stream leader (an election), a full outbound buffer while
        # reconnecting, too many publishes in flight, a timeout.
        self.temporary = (
            asyncio.TimeoutError,
            nats.errors.TimeoutError,
            nats.js.errors.NoStreamResponseError,
            nats.js.errors.ServiceUnavailableError,
            nats.js.errors.TooManyStalledMsgsError,
            nats.errors.OutboundBufferLimitError,
            nats.errors.NoRespondersError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.StaleConnectionError,
        )

    def is_temporary(self, exc: BaseException) -> bool:
        if isinstance(exc, self.temporary):
            return True
        # 503: no JetStream leader right now; 408/409: a request overtaken by a leader change.
        return isinstance(exc, self.api) and getattr(exc, "code", None) in (408, 409, 503)
