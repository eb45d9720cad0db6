"""Helpers shared by the tests that run work in threads and in child processes (the ring
and the stream tests): a call in a background thread, and the child processes of one test.

Imported as ``proc_helpers``, as ``ring_workers`` and ``stream_workers`` are (pytest puts
``tests/`` on ``sys.path``, and multiprocessing hands it to a spawned child). This module
imports the standard library only, never a test module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

JOIN_S = 60.0
"""How long a test waits for a thread or a child process to finish."""


class Background:
    """Runs a call in a daemon thread and keeps its result or exception."""

    def __init__(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(call, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, call: Callable[..., Any], args: Any, kwargs: Any) -> None:
        try:
            self.result = call(*args, **kwargs)
        except BaseException as error:
            self.error = error
        finally:
            self.done.set()

    def finished_within(self, seconds: float) -> bool:
        return self.done.wait(seconds)

    def value(self, seconds: float = JOIN_S) -> Any:
        """The call's result once it finished (AssertionError if not within ``seconds``);
        re-raises what it raised."""
        assert self.finished_within(seconds), f"still running after {seconds} s"
        if self.error is not None:
            raise self.error
        return self.result


class Children:
    """Processes started by one test; any still alive at the end (`finish`, or leaving the
    ``with`` block) are killed by pid. Every join waits at most ``join_s``."""

    def __init__(self, context: BaseContext, join_s: float = JOIN_S) -> None:
        self.context = context
        self.join_s = join_s
        self.started: list[BaseProcess] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()

    def start(self, target: Callable[..., Any], *args: Any) -> BaseProcess:
        process = self.context.Process(target=target, args=args, daemon=True)
        process.start()
        self.started.append(process)
        return process

    def kill(self, process: BaseProcess) -> None:
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.join(self.join_s)
        assert process.exitcode == -signal.SIGKILL

    def join_ok(self, *processes: BaseProcess) -> None:
        for process in processes:
            process.join(self.join_s)
            assert process.exitcode == 0, f"child {process.name} ended with {process.exitcode}"

    def finish(self) -> None:
        for process in self.started:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
            process.join(self.join_s)
