"""Fixtures shared by test files.

``nats_server``: one real nats-server with JetStream for the whole session, started on first
use (``kaelix.connect.nats.testing.NatsServer``: a free loopback port, a temporary storage
folder), stopped and removed at the end of the session, whatever the outcome. Tests that
kill, stall or restart a server start their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def nats_server() -> Iterator[object]:
    from kaelix.connect.nats.testing import NatsServer

    with NatsServer() as server:
        yield server
