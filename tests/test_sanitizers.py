"""The compiled core under AddressSanitizer + UndefinedBehaviorSanitizer, and under valgrind.

* The extensions are built once with ``-DKAELIX_SANITIZE=ON`` (``pip install --target`` of
  this checkout into a temporary directory, build isolation on, so CI needs nothing beyond
  the test extra), and the codec and ring tests run against that build in a child pytest with
  libasan preloaded (the interpreter itself is not instrumented), ``detect_leaks=0`` (CPython
  keeps memory until exit by design) and ``halt_on_error=1`` for UBSan. The fuzz corpus and
  every regression input are replayed against the same build.
* A codec and ring workload (valid frames, every kind of broken frame, header bombs, a ring)
  runs under valgrind memcheck with ``PYTHONMALLOC=malloc``; no memory error may have a
  kaelix frame at the top of its stack and no definitely-lost block may have been allocated
  through kaelix. CPython's own reports (uninitialised reads in its import machinery, blocks
  it never frees) are not kaelix's and are left out by that rule.

Both take about a minute and a half together; they run in the default test run (CI runs them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
CODEC_TESTS = [
    "test_vectors.py",
    "test_message.py",
    "test_batch_api.py",
    "test_crc32c_paths.py",
    "test_codec_properties.py",
    "test_decode_mutations.py",
    "test_errors.py",
    "test_security.py",
]
RING_TESTS = [
    "test_ring_api.py",
    "test_ring_model.py",
    "test_ring_readers.py",
    "test_ring_processes.py",
]
# Finds the editable install's import hook (scikit-build-core's redirecting finder), which
# would load the usual build ahead of PYTHONPATH; a plain install has none. Runs in every
# process started with the sanitized build on its path, spawned children included.
SITECUSTOMIZE = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "ScikitBuildRedirecting" not in type(f).__name__]
"""


def _gcc_runtime(name: str) -> str | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    found = subprocess.run([gcc, f"-print-file-name={name}"], capture_output=True, text=True)
    path = found.stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Builds the sanitized extensions; yields the environment that runs against them."""
    libasan = _gcc_runtime("libasan.so")
    if libasan is None:
        pytest.skip("gcc's libasan.so was not found (gcc -print-file-name=libasan.so)")
    work = tmp_path_factory.mktemp("sanitized")
    site = work / "site"
    build = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
            "--disable-pip-version-check", "--target", str(site),
            "-Ccmake.define.KAELIX_SANITIZE=ON", f"-Cbuild-dir={work / 'build'}", str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])),
        LD_PRELOAD=libasan,
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    where = subprocess.run(
        [sys.executable, "-c", "import kaelix._codec as c, kaelix._ring as r; "
         "print(c.__file__); print(r.__file__)"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert line.startswith(str(site)), f"the usual build was imported: {line}"
        assert b"__asan_init" in Path(line).read_bytes(), f"{line} is not instrumented"
    yield env
    shutil.rmtree(work, ignore_errors=True)


def _check_sanitizer_output(done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        assert marker not in output, output[-6000:]
    assert done.returncode == 0, output[-6000:]


def test_codec_and_ring_tests_under_asan_and_ubsan(sanitized: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         *(str(TESTS / name) for name in CODEC_TESTS + RING_TESTS)],
        capture_output=True, text=True, env=sanitized, cwd=ROOT, timeout=900,
    )  # fmt: skip
    _check_sanitizer_output(done)
    assert re.search(r"\d+ passed", done.stdout), done.stdout[-2000:]


REPLAY = """\
import sys
from pathlib import Path
from kaelix.fuzz import TARGETS
corpus = Path(sys.argv[1])
count = 0
for name, target in TARGETS.items():
    paths = sorted((corpus / name).iterdir())
    paths += sorted(p for p in (corpus / "regressions").iterdir() if p.name.startswith(name + "-"))
    for path in paths:
        target.function(path.read_bytes())
        count += 1
print("replayed", count)
"""


def test_fuzz_corpus_and_regressions_replay_under_asan(sanitized: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", REPLAY, str(TESTS / "corpus")],
        capture_output=True, text=True, env=sanitized, cwd=ROOT, timeout=300,
    )  # fmt: skip
    _check_sanitizer_output(done)
    assert "replayed" in done.stdout


WORKLOAD = """\
import struct
import kaelix
from kaelix import DecodeError, Message, MessageBatch

messages = [
    Message(b"x" * n, key=(b"k" * (n % 7)) if n % 2 else None,
            headers={f"h{i}": bytes([i]) * i for i in range(n % 20)},
            partition=n, producer_id=n * 3, sequence=n, timestamp_ns=-n)
    for n in range(200)
]
for m in messages:
    assert kaelix.decode(kaelix.encode(m)) == m
buf = kaelix.encode_batch(messages)
assert kaelix.decode_batch(buf) == messages
batch = MessageBatch.from_bytes(buf)
assert batch.to_messages() == messages and MessageBatch.from_bytes(bytearray(buf)) == batch
frame = kaelix.encode(messages[57])
refused = 0
for i in range(len(frame)):
    for bit in (1, 0x80):
        bad = bytearray(frame)
        bad[i] ^= bit
        for reseal in (False, True):
            if reseal:
                struct.pack_into("<I", bad, 4, kaelix.crc32c(bad[8:]))
            for call in (kaelix.decode, kaelix.decode_batch, MessageBatch.from_bytes):
                try:
                    call(bytes(bad))
                except DecodeError:
                    refused += 1
    try:
        kaelix.decode(frame[:i])
    except DecodeError:
        refused += 1
many = {f"n{i:02d}": b"" for i in range(40)}
bomb = bytearray(kaelix.encode(Message(b"", headers=many)))
struct.pack_into("<H", bomb, 10, 65535)
struct.pack_into("<I", bomb, 4, kaelix.crc32c(bomb[8:]))
dup = bytearray(kaelix.encode(Message(b"", headers=many)).replace(b"n39", b"n01"))
struct.pack_into("<I", dup, 4, kaelix.crc32c(dup[8:]))
for hostile in (bomb, dup):
    try:
        kaelix.decode(bytes(hostile))
    except DecodeError:
        refused += 1
with kaelix.Ring(1 << 16) as ring:
    for m in messages:
        ring.push(kaelix.encode(m))
    assert ring.pop_batch().to_messages() == messages
assert kaelix.crc32c(b"123456789") == 0xE3069283
print("workload ok", refused)
"""
# A stack frame in kaelix's compiled core (the .so, or its C and header sources).
_OURS = re.compile(r"kaelix/_(codec|ring)\.|_codec\.c\b|_ring\.c\b|kx_\w+\.h")


def kaelix_memcheck_problems(log: str) -> list[str]:
    """The records of a memcheck log that are kaelix's: memory errors with a kaelix frame
    among their top three, and definitely-lost blocks allocated through kaelix."""
    found = []
    for record in re.split(r"\n==\d+== ?\n", log):
        lines = [line for line in record.splitlines() if re.match(r"==\d+==", line)]
        frames = [line for line in lines if re.search(r"(at|by) 0x", line)]
        if not lines or not frames:
            continue
        head = lines[0]
        if "definitely lost" in head:
            if any(_OURS.search(f) for f in frames):
                found.append("\n".join(lines[:14]))
        elif "lost in loss record" not in head and any(_OURS.search(f) for f in frames[:3]):
            found.append("\n".join(lines[:14]))
    return found


def test_memcheck_log_parsing_catches_kaelix_frames() -> None:
    log = (
        "==1== Invalid read of size 4\n"
        "==1==    at 0x1: kx_frame_parse (kx_frame.h:300)\n"
        "==1==    by 0x2: main (python.c:1)\n"
        "==1== \n"
        "==1== Use of uninitialised value of size 8\n"
        "==1==    at 0x3: Py_INCREF (object.h:502)\n"
        "==1==    by 0x4: _PyEval_EvalFrameDefault (ceval.c:1801)\n"
        "==1== \n"
        "==1== 24 bytes in 1 blocks are definitely lost in loss record 1 of 2\n"
        "==1==    at 0x5: malloc (vg_replace_malloc.c:381)\n"
        "==1==    by 0x6: __pyx_f_6kaelix_6_codec_x (in /x/kaelix/_codec.cpython-311.so)\n"
        "==1== \n"
        "==1== 4 bytes in 1 blocks are definitely lost in loss record 2 of 2\n"
        "==1==    at 0x5: malloc (vg_replace_malloc.c:381)\n"
        "==1==    by 0x7: PyThread_allocate_lock (thread.c:1)\n"
    )
    problems = kaelix_memcheck_problems(log)
    assert len(problems) == 2
    assert "Invalid read" in problems[0] and "definitely lost" in problems[1]


VALGRIND_MISSING = (
    "valgrind is not installed. It is not on PyPI, so the test extra cannot bring it; this "
    "project's machines (the python-native kind, CI's included) have it in their image. "
    "Elsewhere install it from the OS packages (apt-get install valgrind) to run this test."
)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason=VALGRIND_MISSING)
def test_codec_workload_under_valgrind_memcheck(tmp_path: Path) -> None:
    script = tmp_path / "workload.py"
    script.write_text(WORKLOAD)
    log = tmp_path / "memcheck.log"
    env = dict(os.environ, PYTHONMALLOC="malloc")
    done = subprocess.run(
        ["valgrind", "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite",
         "--num-callers=40", f"--log-file={log}", sys.executable, str(script)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "workload ok" in done.stdout
    text = log.read_text()
    assert "ERROR SUMMARY" in text, text[-2000:]
    problems = kaelix_memcheck_problems(text)
    assert not problems, "\n\n".join(problems)
