"""The one place the bench learns about optional dependencies (peers such as msgspec,
crc32c and faster-fifo, and rich for tables): whether one is installed, its version, and
the message naming the extra that installs it. A contender names the modules it needs
(``Contender(requires=...)``); the runner skips it with `missing_reason` when one is absent,
so its factory can import them directly.

Availability and versions are read without importing the package (``importlib.util`` and
``importlib.metadata``), so listing peers costs nothing. Never import numba here, nor any
optional dependency at module level.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

BENCH_EXTRA = "bench"
INSTALL_HINT = f'pip install "kaelix[{BENCH_EXTRA}]"'
"""The command that installs every peer and the report dependencies."""

KNOWN_PEERS: dict[str, str] = {
    "msgspec": "msgspec",
    "crc32c": "crc32c",
    "faster_fifo": "faster-fifo",
    "hdrh": "hdrhistogram",
}
"""Peer libraries the suites compare against: import name -> PyPI distribution name.
Their versions are recorded with every run. Later suites add theirs here."""

REPORT_PACKAGES: dict[str, str] = {"rich": "rich"}
"""Optional packages the reports use (import name -> distribution name)."""


def is_installed(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_reason(module: str, extra: str = BENCH_EXTRA) -> str:
    """The sentence shown for a peer that is not installed."""
    return f'{module} is not installed: pip install "kaelix[{extra}]"'


def distribution_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def peer_versions() -> dict[str, str | None]:
    """Version of every known peer and report package (None when not installed)."""
    packages = {**KNOWN_PEERS, **REPORT_PACKAGES}
    return {name: distribution_version(dist) for name, dist in sorted(packages.items())}
