"""What a benchmark result was measured on: CPU model, logical CPUs and physical cores,
Python, numpy, numba, kaelix and peer versions, the CRC32C implementation in use, and the
git commit (and whether it was modified) of the kaelix source that ran.

Collected once per run and stored with it, so a saved result says where it came from.
Imports only the public kaelix API (``kaelix.__version__``, ``kaelix.crc32c_implementation``)
and numpy's version; never numba, and never a peer (versions come from package metadata).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from kaelix.bench._peers import distribution_version, peer_versions


def cpu_model() -> str:
    """The CPU's marketing name from ``/proc/cpuinfo`` where there is one, else what
    `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def physical_cores() -> int | None:
    """Physical cores (distinct ``(physical id, core id)`` pairs of ``/proc/cpuinfo``), or
    None where that file does not say; logical CPUs (`os.cpu_count`) count SMT threads."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    cores: set[tuple[str, str]] = set()
    package = core = None
    for line in [*text.splitlines(), ""]:
        name, _, value = line.partition(":")
        name = name.strip()
        if name == "physical id":
            package = value.strip()
        elif name == "core id":
            core = value.strip()
        elif not name:  # a blank line ends one processor's block
            if package is not None and core is not None:
                cores.add((package, core))
            package = core = None
    return len(cores) or None


def usable_cpus() -> int | None:
    """CPUs this process may run on (its affinity), or None where that is unknown."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return len(os.sched_getaffinity(0))
        except OSError:
            return None
    return os.cpu_count()


def _git(*args: str, cwd: str | None = None) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_directory() -> str:
    """The directory of the kaelix package that runs: in a checkout with an editable
    install, inside the git work tree whose commit is recorded."""
    import kaelix

    return os.path.dirname(os.path.abspath(kaelix.__file__))


def git_commit(directory: str | None = None) -> tuple[str | None, bool | None]:
    """The commit checked out where ``directory`` (default: the kaelix package, so a run
    started from anywhere records the code it measured) lies, and whether tracked files
    differ from it; ``(None, None)`` when git or a commit is not there (kaelix installed
    from a wheel)."""
    where = source_directory() if directory is None else directory
    commit = _git("rev-parse", "HEAD", cwd=where)
    if not commit:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=where)
    return commit, (bool(status) if status is not None else None)


def _kaelix_facts() -> tuple[str | None, str | None]:
    import kaelix

    version = getattr(kaelix, "__version__", None)
    implementation_of = getattr(kaelix, "crc32c_implementation", None)
    implementation = None
    if callable(implementation_of):
        try:
            implementation = str(implementation_of())
        except Exception as exc:  # report, don't fail the run over a fact
            implementation = f"error: {exc}"
    return (str(version) if version is not None else None), implementation


def collect() -> dict[str, Any]:
    """Everything above as a JSON-ready dict (the ``"machine"`` entry of a result file)."""
    kaelix_version, crc_implementation = _kaelix_facts()
    commit, dirty = git_commit()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "physical_cores": physical_cores(),
        "usable_cpus": usable_cpus(),
        "architecture": platform.machine(),
        "platform": platform.platform(),
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
        "python_build": " ".join(platform.python_build()),
        "executable": sys.executable,
        "numpy_version": distribution_version("numpy"),
        "numba_version": distribution_version("numba"),
        "kaelix_version": kaelix_version,
        "crc32c_implementation": crc_implementation,
        "peers": peer_versions(),
        "git_commit": commit,
        "git_dirty": dirty,
    }
