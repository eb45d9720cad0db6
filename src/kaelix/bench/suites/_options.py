"""What the suites share to read ``--size`` and ``--messages`` (`SuiteConfig.size`,
`SuiteConfig.messages`): the checks that turn a value a suite cannot use into a ValueError
naming the option, the suite, the limit and the value (the command line makes it a usage
error, exit status 2, before anything runs), and the labels case names derive from sizes.

Imports the standard library and the bench model only; never kaelix, numpy or numba.
"""

from __future__ import annotations

from kaelix.bench._model import SuiteConfig

KIB = 1024

MAX_SIZE = 4 * KIB
"""The largest ``--size`` the suites take: their rings, queues and batches (1,024 frames,
twice over in a ring of at most 16 MiB) and their per-trial data are sized for payloads up
to 4 KiB."""


def payload_size(config: SuiteConfig, default: int, suite: str, *, maximum: int = MAX_SIZE) -> int:
    """The payload size a suite uses: ``config.size`` when given, else ``default``; raises
    ValueError when the given size is not a whole number from 1 to ``maximum``."""
    size = config.size
    if size is None:
        return default
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= maximum:
        raise ValueError(
            f"--size must be a whole number of bytes from 1 to {maximum:,} for the {suite} "
            f"suite (its rings and batches are sized for payloads up to {size_label(maximum)}); "
            f"got {size!r}"
        )
    return size


def message_count(config: SuiteConfig, default: int, suite: str, *, minimum: int = 1) -> int:
    """The messages per trial a suite uses: ``config.messages`` when given, else
    ``default``; raises ValueError when the given count is not a whole number of at least
    ``minimum``."""
    messages = config.messages
    if messages is None:
        return default
    if isinstance(messages, bool) or not isinstance(messages, int) or messages < minimum:
        raise ValueError(
            f"--messages must be a whole number >= {minimum:,} for the {suite} suite; "
            f"got {messages!r}"
        )
    return messages


def size_label(nbytes: int) -> str:
    """``"64 B"``, ``"1,500 B"``, ``"4 KiB"``: KiB only for whole kibibytes, so a case name
    always shows the exact size used."""
    if nbytes >= KIB and nbytes % KIB == 0:
        return f"{nbytes // KIB:,} KiB"
    return f"{nbytes:,} B"


def round_up(count: int, unit: int) -> int:
    """``count`` rounded up to a whole number of ``unit``."""
    return -(-count // unit) * unit


def capacity_for(default: int, batch_bytes: int) -> int:
    """A ring (or faster-fifo buffer) capacity holding a batch of ``batch_bytes`` twice:
    ``default`` when it does, else the next power of two that does."""
    needed = 2 * batch_bytes
    if default >= needed:
        return default
    return 1 << (needed - 1).bit_length()
