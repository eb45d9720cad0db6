"""kaelix's pytest plugin: stream fixtures that clean up after themselves, a delivery tracker
whose report is printed when a test fails, hypothesis profiles, and a session seed for
kaelix's bulk generators.

Registered under the ``pytest11`` entry point, so it loads in every pytest run of an
environment where kaelix is installed; it is therefore inert until used. Loading it costs
what ``import kaelix`` costs (the entry point's module is inside the package) and a few
milliseconds more: at module level it imports pytest and the standard library only;
kaelix's classes are imported by the fixtures that need them, hypothesis only when a
``kaelix-*`` profile is asked for (or hypothesis is already imported), and numba only
through ``DeliveryTracker``. See docs/plugin.md.

Never imports kaelix.bench or kaelix.monitor.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import sys
import uuid
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from kaelix import Stream
    from kaelix.validate import DeliveryReport, DeliveryTracker

__all__ = [
    "PROFILES",
    "ReportRegistry",
    "StreamFactory",
    "register_profiles",
]

PROFILES: dict[str, dict[str, Any]] = {
    # Quick feedback while editing: few examples, no deadline (streams wait on threads and
    # a loaded machine makes timings jitter), failures still saved to the example database.
    "kaelix-dev": {
        "max_examples": 20,
        "stateful_step_count": 20,
        "deadline": None,
    },
    # Continuous integration: reproducible (derandomized, no example database to carry
    # between runs), a blob to replay any failure, and no health check that a slow shared
    # runner trips by itself.
    "kaelix-ci": {
        "max_examples": 200,
        "stateful_step_count": 50,
        "deadline": None,
        "derandomize": True,
        "database": None,
        "print_blob": True,
        "suppress_health_check": ["too_slow"],
    },
    # Nightly or before a release: ten times CI's examples, longer stateful programs.
    "kaelix-thorough": {
        "max_examples": 2000,
        "stateful_step_count": 100,
        "deadline": None,
        "print_blob": True,
        "suppress_health_check": ["too_slow", "data_too_large"],
    },
}
"""The hypothesis profiles the plugin registers, as ``settings`` keyword arguments (health
checks by name). Choose one with hypothesis's own ``--hypothesis-profile=kaelix-ci``."""

_SEED_LIMIT = 2**64
_STREAM_MARKER = "kaelix_stream"
_TRACKER_MARKER = "kaelix_tracker"


# --------------------------------------------------------------------------------------------
# Hypothesis profiles
# --------------------------------------------------------------------------------------------


def register_profiles() -> bool:
    """Registers ``PROFILES`` with hypothesis (again is harmless). Returns False, and does
    nothing, when hypothesis is not installed.

    The plugin calls it when pytest starts if ``--hypothesis-profile`` names a ``kaelix-*``
    profile or hypothesis is already imported; call it yourself before
    ``settings.load_profile("kaelix-ci")`` in a conftest that picks a profile in code.
    """
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:
        return False
    for name, options in PROFILES.items():
        values = dict(options)
        if "suppress_health_check" in values:
            values["suppress_health_check"] = [
                HealthCheck[check] for check in values["suppress_health_check"]
            ]
        # Based on hypothesis's own "default" profile, never on whichever profile is active:
        # hypothesis loads its "ci" profile (derandomized) when CI is set, and a profile
        # registered without a parent would inherit that.
        settings.register_profile(name, parent=settings.get_profile("default"), **values)
    return True


# --------------------------------------------------------------------------------------------
# Options, header, configuration
# --------------------------------------------------------------------------------------------


def _seed_argument(value: str) -> int:
    try:
        seed = int(value, 0)
    except ValueError:
        seed = -1
    if not 0 <= seed < _SEED_LIMIT:
        raise argparse.ArgumentTypeError(
            f"--kaelix-seed must be an integer from 0 to 2**64 - 1 (decimal or 0x hex), "
            f"got {value!r}"
        )
    return seed


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kaelix", "kaelix streams and delivery checks")
    group.addoption(
        "--kaelix-seed",
        dest="kaelix_seed",
        type=_seed_argument,
        default=None,
        metavar="SEED",
        help="seed for kaelix's bulk generators (the kaelix_seed fixture); default: drawn "
        "once per session and shown in the report header",
    )


_SEED_KEY = pytest.StashKey[int]()
_GIVEN_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_STREAM_MARKER}(**options): Stream options (partitions, capacity, backpressure, "
        "send_timeout, max_producers, max_consumers) for the kaelix_stream and "
        "kaelix_shared_stream fixtures",
    )
    config.addinivalue_line(
        "markers",
        f"{_TRACKER_MARKER}(**options): DeliveryTracker options (window, ordering, start, "
        "max_examples) for the delivery_tracker fixture",
    )
    given = config.getoption("kaelix_seed", None)
    worker = getattr(config, "workerinput", None)  # a pytest-xdist worker: the controller's
    if given is None and worker is not None and "kaelix_seed" in worker:
        given = worker["kaelix_seed"]
    config.stash[_GIVEN_KEY] = given is not None
    config.stash[_SEED_KEY] = secrets.randbits(32) if given is None else int(given)
    # Before hypothesis's own pytest_configure loads the profile it was asked for.
    profile = config.getoption("hypothesis_profile", None)
    if (isinstance(profile, str) and profile.startswith("kaelix-")) or "hypothesis" in sys.modules:
        register_profiles()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker uses the controller's seed."""
    node.workerinput["kaelix_seed"] = node.config.stash[_SEED_KEY]


def pytest_collection_finish(session: pytest.Session) -> None:
    """When the collected tests use kaelix's testing toolkit, loads the validators' compiled
    kernels before the first test (``kaelix.warm_up_validators``), so that numba's load
    (half a second from its cache) never lands inside a hypothesis example and trips its
    deadline. Sessions that do not import ``kaelix.testing.strategies`` pay nothing."""
    if session.items and "kaelix.testing.strategies" in sys.modules:
        from kaelix import warm_up_validators

        warm_up_validators()


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.stash[_SEED_KEY]
    how = "given" if config.stash[_GIVEN_KEY] else "drawn"
    return f"kaelix: seed {seed} ({how}; rerun with --kaelix-seed={seed})"


@pytest.fixture(scope="session")
def kaelix_seed(pytestconfig: pytest.Config) -> int:
    """The session's seed for kaelix's bulk generators: ``--kaelix-seed``, or one drawn when
    the session started (shown in the report header, and under a failing test that used
    it)."""
    return pytestconfig.stash[_SEED_KEY]


# --------------------------------------------------------------------------------------------
# Reports printed on failure
# --------------------------------------------------------------------------------------------


class _Summarised(Protocol):
    def summary(self) -> str: ...


class ReportRegistry:
    """The reports printed under a test when it fails, as the ``kaelix_reports`` fixture.

    ``add(report, label=...)`` registers a ``DeliveryReport``, a ``LatencyReport``, a
    ``DeliveryTracker`` (its report is taken when the test fails, so register it once and
    feed it afterwards) or anything with a ``summary()`` method returning text. The
    ``delivery_tracker`` fixture registers itself.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[tuple[str, object]] = []

    def add(self, report: object, *, label: str | None = None) -> None:
        """Registers ``report`` to print, under ``label`` (default: its type's name), if the
        test fails."""
        if not callable(getattr(report, "summary", None)) and not callable(
            getattr(report, "report", None)
        ):
            raise TypeError(
                f"kaelix_reports.add takes a DeliveryReport, LatencyReport, DeliveryTracker or "
                f"an object with a summary() method, got {type(report).__name__}"
            )
        if label is not None and not isinstance(label, str):
            raise TypeError(f"label must be a str or None, got {type(label).__name__}")
        self._entries.append((label or type(report).__name__, report))

    __call__ = add

    def __len__(self) -> int:
        return len(self._entries)

    def render(self) -> str:
        """Every registered report's summary, each under its label; a report that cannot be
        built says why instead of hiding the test's own failure."""
        parts = []
        for label, entry in self._entries:
            try:
                text = _summary_of(entry)
            except Exception as exc:  # the test's failure matters more than ours
                text = f"(no report: {type(exc).__name__}: {exc})"
            parts.append(f"{label}:\n{_indent(text)}")
        return "\n".join(parts)


def _summary_of(entry: object) -> str:
    summary = getattr(entry, "summary", None)
    if callable(summary):
        return str(summary())
    tracker: Any = entry
    if tracker.messages == 0:
        return "no messages fed to the tracker"
    report: _Summarised = tracker.report()
    return f"{report.summary()}\n(after {tracker.messages:,} messages fed)"


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


_REPORTS_KEY = pytest.StashKey[ReportRegistry]()
_SHOWN_KEY = pytest.StashKey[bool]()


def _registry(node: pytest.Item | pytest.Collector) -> ReportRegistry:
    registry = node.stash.get(_REPORTS_KEY, None)
    if registry is None:
        registry = node.stash[_REPORTS_KEY] = ReportRegistry()
    return registry


@pytest.fixture
def kaelix_reports(request: pytest.FixtureRequest) -> ReportRegistry:
    """Registers reports to print under the test if it fails: ``kaelix_reports.add(report,
    label="orders")`` (or ``kaelix_reports(report)``)."""
    return _registry(request.node)


@pytest.fixture
def delivery_tracker(request: pytest.FixtureRequest) -> DeliveryTracker:
    """A fresh ``kaelix.validate.DeliveryTracker`` (options from a ``kaelix_tracker``
    marker), whose report is printed under the test if it fails."""
    from kaelix.validate import DeliveryTracker

    tracker = DeliveryTracker(**_marker_options(request, _TRACKER_MARKER))
    _registry(request.node).add(tracker, label="delivery_tracker")
    return tracker


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and not item.stash.get(_SHOWN_KEY, False):
        item.stash[_SHOWN_KEY] = True  # once per test, at its first failing phase
        registry = item.stash.get(_REPORTS_KEY, None)
        if registry is not None and len(registry):
            report.sections.append(("kaelix delivery report", registry.render()))
        if "kaelix_seed" in getattr(item, "fixturenames", ()):
            seed = item.config.stash[_SEED_KEY]
            report.sections.append(("kaelix seed", f"rerun with --kaelix-seed={seed}"))
    if call.when == "teardown":  # a rerun of the item starts afresh
        if _REPORTS_KEY in item.stash:
            del item.stash[_REPORTS_KEY]
        if _SHOWN_KEY in item.stash:
            del item.stash[_SHOWN_KEY]
    return report


# --------------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------------


def _marker_options(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    marker = request.node.get_closest_marker(name)
    if marker is None:
        return {}
    if marker.args:
        raise TypeError(
            f"@pytest.mark.{name} takes keyword options only, got positional {marker.args!r}"
        )
    return dict(marker.kwargs)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _unique_name(node_name: str) -> str:
    """``kxt-<pid>-<test name>-<8 hex>``: a valid stream name, unique across processes."""
    label = _UNSAFE.sub("-", node_name).strip("-")[:40] or "test"
    return f"kxt-{os.getpid()}-{label}-{uuid.uuid4().hex[:8]}"


class StreamFactory:
    """Makes streams for one test and closes them all after it, as the
    ``kaelix_stream_factory`` fixture: ``kaelix_stream_factory(partitions=4,
    backpressure="error")``, ``kaelix_stream_factory(shared=True)``.

    Every stream gets a unique name unless one is given. After the test, however it ended,
    each stream is closed; a shared one is detached and its shared-memory segments are
    unlinked (``Stream.remove``), so nothing is left in ``/dev/shm``.
    """

    __slots__ = ("_label", "_streams")

    def __init__(self, label: str = "test") -> None:
        self._label = label
        self._streams: list[Stream] = []

    def __call__(self, name: str | None = None, **options: Any) -> Stream:
        """A new ``kaelix.Stream(name, **options)``; see ``Stream`` for the options."""
        from kaelix import Stream

        stream = Stream(_unique_name(self._label) if name is None else name, **options)
        self._streams.append(stream)
        return stream

    @property
    def streams(self) -> tuple[Stream, ...]:
        """The streams made so far, oldest first."""
        return tuple(self._streams)

    def cleanup(self) -> None:
        """Closes every stream (and unlinks shared segments); the first error, if any, is
        raised after all were cleaned."""
        from kaelix import Stream

        errors: list[BaseException] = []
        streams, self._streams = self._streams, []
        for stream in reversed(streams):
            try:
                stream.__exit__(None, None, None)
            except Exception as exc:
                errors.append(exc)
            if stream.shared:
                with contextlib.suppress(FileNotFoundError):
                    Stream.remove(stream.name)
        if errors:
            raise errors[0]


@pytest.fixture
def kaelix_stream_factory(request: pytest.FixtureRequest) -> Iterator[StreamFactory]:
    """A ``StreamFactory``: call it for each stream the test needs (any ``Stream`` option,
    ``shared=True`` included); all are closed, and shared segments unlinked, afterwards."""
    factory = StreamFactory(request.node.name)
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def kaelix_stream(request: pytest.FixtureRequest, kaelix_stream_factory: StreamFactory) -> Stream:
    """An in-process ``kaelix.Stream`` with a unique name, closed after the test. Options
    from a ``kaelix_stream`` marker: ``@pytest.mark.kaelix_stream(partitions=4)``."""
    options = _marker_options(request, _STREAM_MARKER)
    _refuse(options, "shared", "kaelix_stream is in-process; use kaelix_shared_stream")
    return kaelix_stream_factory(**options)


@pytest.fixture
def kaelix_shared_stream(
    request: pytest.FixtureRequest, kaelix_stream_factory: StreamFactory
) -> Stream:
    """A shared-memory ``kaelix.Stream`` with a unique name (other processes open it with
    ``Stream.open(stream.name)`` or receive it pickled), closed after the test with its
    segments unlinked, even when the test fails. Options from a ``kaelix_stream`` marker."""
    options = _marker_options(request, _STREAM_MARKER)
    _refuse(options, "shared", "kaelix_shared_stream is always shared")
    return kaelix_stream_factory(shared=True, **options)


def _refuse(options: dict[str, Any], name: str, why: str) -> None:
    if name in options:
        raise TypeError(f"@pytest.mark.{_STREAM_MARKER} cannot set {name}=: {why}")


# --------------------------------------------------------------------------------------------
# Assertion messages
# --------------------------------------------------------------------------------------------


def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> list[str] | None:
    """``assert report == expected`` between two ``DeliveryReport``: which counts differ."""
    reports = sys.modules.get("kaelix.validate._reports")
    if op != "==" or reports is None:  # no report can exist before the module is imported
        return None
    report_type: type[DeliveryReport] = reports.DeliveryReport
    if not (isinstance(left, report_type) and isinstance(right, report_type)):
        return None
    return _report_diff(left, right, reports.CATEGORIES)


def _report_diff(left: DeliveryReport, right: DeliveryReport, categories: Any) -> list[str]:
    fields = ("expected", "delivered", *categories, "ordering")
    lines = [f"{_verdict(left)} == {_verdict(right)}", "counts that differ (left != right):"]
    for name in fields:
        a, b = getattr(left, name), getattr(right, name)
        if a != b:
            lines.append(f"  {name}: {a!r} != {b!r}")
    if len(lines) == 2:
        lines.append("  none: only the examples differ")
        for name in categories:
            a, b = left.examples.get(name, ()), right.examples.get(name, ())
            if a != b:
                lines.append(f"  examples[{name!r}]: {a!r} != {b!r}")
    lines.append("left:")
    lines.extend("  " + line for line in left.summary().splitlines())
    lines.append("right:")
    lines.extend("  " + line for line in right.summary().splitlines())
    return lines


def _verdict(report: DeliveryReport) -> str:
    return f"DeliveryReport({'ok' if report.ok else 'PROBLEMS'}, {report.delivered} delivered)"
