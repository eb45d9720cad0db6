"""The private event loop a ``NatsStream`` runs its nats-py client on, and the lazy import of
nats-py.

nats-py is an asyncio client: one connection belongs to one event loop. kaelix's streams are
used from plain threads (``send``, ``poll``) and from the user's own event loops
(``send_async``, ``poll_async``) alike, so each ``NatsStream`` runs its connection on a loop
of its own, on a daemon thread: a synchronous call hands a coroutine over with
``asyncio.run_coroutine_threadsafe`` and waits for its result; an ``async`` call awaits the
same future wrapped for the caller's loop, so it never blocks that loop nor holds a thread
of its executor. Every timeout is enforced inside the coroutine, on the private loop.

Imports the standard library only; nats-py through ``require_nats``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["EXTRA_HINT", "PrivateLoop", "require_nats"]

T = TypeVar("T")

EXTRA_HINT = 'pip install "kaelix[nats]"'


def require_nats() -> ModuleType:
    """``nats`` (nats-py), imported on first use; ImportError naming the extra if missing."""
    try:
        import nats
        import nats.errors
        import nats.js
        import nats.js.api
        import nats.js.errors
    except ImportError as exc:
        raise ImportError(
            f"kaelix.connect.nats needs the nats-py client, which is not installed: "
            f"{EXTRA_HINT} (or pip install nats-py)"
        ) from exc
    return nats


class PrivateLoop:
    """An asyncio event loop running on a daemon thread of its own until ``close()``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        self._closed = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            # Tasks still pending (a poll cancelled by close) are cancelled and awaited, so
            # nothing is left half-done when the loop goes.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def on_loop(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.get_ident() == self._thread.ident

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedules ``coro`` on the loop."""
        if self._closed:
            coro.close()
            raise RuntimeError("the loop is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs ``coro`` on the loop and returns its result, from any other thread. An
        interrupt (Ctrl-C) while waiting cancels the coroutine."""
        if self.on_loop:
            coro.close()
            raise RuntimeError(
                "a synchronous kaelix.connect.nats call was made from the connection's own "
                "event loop; use the *_async method"
            )
        future = self.submit(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Awaits ``coro`` run on the loop, from another event loop (or this one, where it
        is awaited directly). Cancelling the caller cancels the coroutine."""
        if self.on_loop:
            return await coro
        future = self.submit(coro)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def close(self, timeout: float = 10.0) -> None:
        """Stops the loop (cancelling what still runs on it) and joins its thread."""
        if self._closed:
            return
        self._closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        if not self.on_loop:
            self._thread.join(timeout)
