"""kaelix.validate: proofs of what a stream delivered. Delivery checks over MessageBatch
columns (numba kernels, compiled on first use and cached on disk), incremental tracking,
message invariants and latency reports. This package only re-exports."""

from kaelix.validate._delivery import DeliveryTracker, check_delivery, warm_up_validators
from kaelix.validate._invariants import InvariantViolation, Violation, validate_message_invariants
from kaelix.validate._latency import latency_report
from kaelix.validate._reports import DeliveryReport, Example, LatencyReport

__all__ = [
    "DeliveryReport",
    "DeliveryTracker",
    "Example",
    "InvariantViolation",
    "LatencyReport",
    "Violation",
    "check_delivery",
    "latency_report",
    "validate_message_invariants",
    "warm_up_validators",
]
