"""The validators' reports: plain frozen dataclasses with a one-screen summary and a
JSON-ready dict. Imports only the standard library."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CATEGORIES = ("lost", "duplicated", "reordered", "corrupted", "unexpected", "late")


@dataclass(frozen=True)
class Example:
    """One message behind a count: its key and where it was (its index in the received
    messages, or in the sent ones for a lost message; for the tracker, the index among all
    messages fed to it)."""

    producer_id: int
    partition: int
    sequence: int
    position: int


@dataclass(frozen=True)
class DeliveryReport:
    """What a delivery check found. True only when nothing was lost, duplicated, reordered,
    corrupted, unexpected or late."""

    expected: int
    delivered: int
    lost: int
    duplicated: int
    reordered: int
    corrupted: int
    unexpected: int
    ordering: str
    late: int = 0
    examples: dict[str, tuple[Example, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Nothing wrong."""
        return not any(getattr(self, name) for name in CATEGORIES)

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> str:
        """A few lines a person reads: the verdict, every count, the first examples."""
        verdict = "OK" if self.ok else "PROBLEMS"
        lines = [
            f"delivery {verdict}: {self.delivered:,} of {self.expected:,} expected messages "
            f"delivered (ordering={self.ordering})",
            "  " + " · ".join(f"{name} {getattr(self, name):,}" for name in CATEGORIES),
        ]
        for name in CATEGORIES:
            shown = self.examples.get(name, ())
            if shown:
                where = ", ".join(
                    f"p{e.producer_id}/part{e.partition}/seq{e.sequence}@{e.position}"
                    for e in shown
                )
                lines.append(f"  {name}: {where}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready built-in types."""
        out = asdict(self)
        out["ok"] = self.ok
        out["examples"] = {
            name: [asdict(e) for e in examples] for name, examples in self.examples.items()
        }
        return out


@dataclass(frozen=True)
class LatencyReport:
    """Latency percentiles (nearest rank, in ns) and how many exceeded the bound. True when
    none did."""

    count: int
    min_ns: int | None
    p50_ns: int | None
    p90_ns: int | None
    p99_ns: int | None
    p999_ns: int | None
    p9999_ns: int | None
    max_ns: int | None
    mean_ns: float | None
    bound_ns: int | None
    over_bound: int

    def __bool__(self) -> bool:
        return self.over_bound == 0

    def summary(self) -> str:
        """One line per figure group."""
        if self.count == 0:
            return "latency: no samples"

        def us(ns: int | float | None) -> str:
            return "-" if ns is None else f"{ns / 1000:,.3f} µs"

        line = (
            f"latency over {self.count:,} messages: p50 {us(self.p50_ns)} · p90 {us(self.p90_ns)}"
            f" · p99 {us(self.p99_ns)} · p99.9 {us(self.p999_ns)} · p99.99 {us(self.p9999_ns)}"
            f" · max {us(self.max_ns)} (min {us(self.min_ns)}, mean {us(self.mean_ns)})"
        )
        if self.bound_ns is not None:
            line += f"\n  {self.over_bound:,} over the bound of {us(self.bound_ns)}"
        return line

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready built-in types."""
        return asdict(self)
