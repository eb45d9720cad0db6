"""Numba compile time, measured apart from throughput: the first call of a jitted function
in a fresh interpreter, minus its second call, with an empty or a filled on-disk cache.

A suite provides ``compile_probe(what, size) -> {"first_call_ns", "second_call_ns"}`` in
its module (run in the new interpreter: it imports what it needs, then times two calls) and
makes its case with `compile_time_case` (or its contenders with `compile_time_workload`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile

from kaelix.bench._model import Case, Contender, Workload

__all__ = ["compile_time_case", "compile_time_workload"]


def _probe(module: str, what: str, cache_dir: str, size: int) -> dict[str, int]:
    """``module.compile_probe(what, size)`` in a new interpreter whose numba cache is
    ``cache_dir``."""
    code = (
        "import json, sys\n"
        f"from {module} import compile_probe\n"
        "print(json.dumps(compile_probe(sys.argv[1], int(sys.argv[2]))))\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    done = subprocess.run(
        [sys.executable, "-c", code, what, str(size)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"the compile probe exited with {done.returncode}: {tail}")
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _first_call_extra_ns(module: str, what: str, cache_dir: str, size: int) -> float:
    times = _probe(module, what, cache_dir, size)
    extra = times["first_call_ns"] - times["second_call_ns"]
    if extra <= 0:
        raise RuntimeError(
            f"the first {what} call was no slower than the second ({times}): "
            "is NUMBA_DISABLE_JIT set?"
        )
    return float(extra)


def compile_time_workload(module: str, what: str, cached: bool, size: int) -> Workload:
    """A one-shot workload timing what the first call of ``what`` costs more than the second
    in a fresh interpreter: numba's compile time (``cached=False``, an empty cache) or its
    load from the on-disk cache (``cached=True``, the cache filled first, untimed)."""
    cache_dir = tempfile.mkdtemp(prefix="kaelix-bench-numba-")
    if cached:
        _probe(module, what, cache_dir, size)  # fills the cache, not timed
    return Workload(
        functools.partial(_first_call_extra_ns, module, what, cache_dir, size),
        messages=0,
        timer="once",
        close=functools.partial(shutil.rmtree, cache_dir, ignore_errors=True),
    )


def compile_time_case(
    module: str, first: str, second: str, size: int, probe_note: str, rates: str
) -> Case:
    """The "numba compile" case of a suite: ``first`` with an empty and with a filled
    cache, ``second`` with an empty one; ``probe_note`` says what the probe does, ``rates``
    names what the suite's rates measure after it."""

    def contender(what: str, cached: bool) -> Contender:
        cache = "on-disk cache" if cached else "no cache"
        note = (
            "the same, after one untimed process filled that cache: loading the cached kernels"
            if cached
            else probe_note
        )
        return Contender(
            f"kaelix {what}, {cache}",
            lambda: compile_time_workload(module, what, cached, size),
            role="kaelix",
            note=note,
        )

    return Case(
        "numba compile: first call in a fresh process",
        (contender(first, False), contender(first, True), contender(second, False)),
        note="what a process pays once, on its first call (one trial each, no rate): "
        f"{rates} measured after it",
    )
