"""CPython's own queue tests run against kaelix.Queue and kaelix.JoinableQueue.

The cases are ``test._test_multiprocessing._TestQueue``, the ones the interpreter's own
``test_multiprocessing_{fork,spawn,forkserver}`` run against ``multiprocessing.Queue``. The
standard library turns each base class into concrete ones by adding a mixin that says where
``self.Queue``, ``self.Process``, ``self.Event`` and the rest come from, and
``ProcessesMixin``'s ``setUpClass``/``tearDownClass`` (which report dangling processes and
threads); it picks the start method by setting the global one in ``setUpModule``. Here the
mixins take every primitive from the context of one start method instead (so the three start
methods run side by side in one module without touching the global), except ``Queue`` and
``JoinableQueue``, which are kaelix's. Every case runs twice per start method: once with
``self.Queue`` as ``kaelix.Queue`` and once as ``kaelix.JoinableQueue`` (``JoinableQueue`` is
always kaelix's).

The generated classes live in this module's namespace under their own names, as the standard
library's do, because the cases hand bound class methods (``self._test_put``) to child
processes: under "spawn" and "forkserver" a child unpickles them by importing this module
(pytest puts ``tests/`` on ``sys.path`` and multiprocessing hands it to the child).

Where the interpreter does not ship its ``test`` package, the whole module skips and says so.
"""

from __future__ import annotations

import multiprocessing
import unittest
from typing import Any

import pytest

import kaelix

try:
    from test import _test_multiprocessing as cpython_tests
except (ImportError, unittest.SkipTest) as missing:
    pytest.skip(
        "CPython's queue tests need the interpreter's test package "
        f"(test._test_multiprocessing), which this Python lacks: {missing!r}",
        allow_module_level=True,
    )

# Python 3.12+ warns at every fork of a process with threads; these tests fork on purpose.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)

START_METHODS = ("fork", "spawn", "forkserver")

QUEUE_TYPES: dict[str, type[kaelix.Queue]] = {
    "Queue": kaelix.Queue,
    "JoinableQueue": kaelix.JoinableQueue,
}

# The cases of _TestQueue that test the standard library itself, not ``self.Queue``: each
# makes a multiprocessing queue by name, so it would pass or fail whatever kaelix does. They
# are left out of the generated classes here, and only here (a test set to None is not a
# test to unittest's loader, which pytest uses). Each value says why, and where
# tests/test_queue.py checks the same behaviour against kaelix's queues.
NOT_ABOUT_KAELIX = {
    "test_no_import_lock_contention": "imports a module that makes multiprocessing.Queue() "
    "(bpo-22853: its feeder thread and the import lock; kaelix has no feeder thread)",
    "test_timeout": "q = multiprocessing.Queue(); see "
    "test_get_raises_empty_after_its_timeout_on_the_monotonic_clock",
    "test_queue_feeder_on_queue_feeder_error": "subclasses multiprocessing.queues.Queue; see "
    "test_unserializable_item_goes_to_the_feeder_error_hook",
    "test_closed_queue_put_get_exceptions": "for q in multiprocessing.Queue(), "
    "multiprocessing.JoinableQueue(); see test_use_after_close_raises_value_error",
}

# The primitives ProcessesMixin takes from the multiprocessing module (so from the global
# start method); here they come from one context each.
CONTEXT_CALLABLES = (
    "current_process",
    "parent_process",
    "active_children",
    "set_executable",
    "Pool",
    "Pipe",
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Barrier",
    "Value",
    "Array",
    "RawValue",
    "RawArray",
)


def kaelix_mixin(start_method: str, queue_type: type[kaelix.Queue]) -> type:
    """A ProcessesMixin whose primitives come from the context of ``start_method`` and whose
    ``Queue`` is ``queue_type`` (``JoinableQueue`` is always kaelix's)."""
    context = multiprocessing.get_context(start_method)
    namespace: dict[str, Any] = {
        name: staticmethod(getattr(context, name)) for name in CONTEXT_CALLABLES
    }
    namespace.update(
        Process=context.Process,
        Queue=staticmethod(queue_type),
        JoinableQueue=staticmethod(kaelix.JoinableQueue),
        start_method=start_method,
    )
    return type(
        f"Kaelix{queue_type.__name__}{start_method.capitalize()}Mixin",
        (cpython_tests.ProcessesMixin,),
        namespace,
    )


def install_queue_tests(module_globals: dict[str, Any]) -> list[str]:
    """Adds one unittest class per (start method, queue type) to ``module_globals``, built
    as the standard library's ``install_tests_in_module_dict`` builds its "processes" ones:
    ``class Temp(base, Mixin, unittest.TestCase)``. Returns their names."""
    base = cpython_tests._TestQueue
    assert "processes" in base.ALLOWED_TYPES
    excluded = {name: None for name in NOT_ABOUT_KAELIX if hasattr(base, name)}
    names = []
    for start_method in START_METHODS:
        for label, queue_type in QUEUE_TYPES.items():
            name = f"WithKaelix{label}{start_method.capitalize()}TestQueue"
            mixin = kaelix_mixin(start_method, queue_type)
            cls = type(name, (base, mixin, unittest.TestCase), dict(excluded))
            cls.__module__ = __name__
            cls.__qualname__ = name
            module_globals[name] = cls
            names.append(name)
    return names


INSTALLED = install_queue_tests(globals())


def test_every_start_method_and_queue_type_is_installed() -> None:
    assert len(INSTALLED) == len(START_METHODS) * len(QUEUE_TYPES)
    loader = unittest.TestLoader()
    cases = {name for name in dir(cpython_tests._TestQueue) if name.startswith("test")} - set(
        NOT_ABOUT_KAELIX
    )
    assert cases >= {"test_put", "test_get", "test_fork", "test_qsize", "test_task_done"}
    for name in INSTALLED:
        cls = globals()[name]
        assert set(loader.getTestCaseNames(cls)) == cases
        assert cls.Queue in (kaelix.Queue, kaelix.JoinableQueue)
        assert cls.JoinableQueue is kaelix.JoinableQueue
        assert cls.Process is multiprocessing.get_context(cls.start_method).Process
