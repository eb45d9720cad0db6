"""Saved results: ``--save NAME`` writes a run to ``benchmarks/NAME.json`` (the latest run of
that name, the usual ``--compare`` baseline) and appends it to
``benchmarks/history/NAME/<timestamp>-<commit>.json`` so trends can be plotted;
``--compare NAME_OR_FILE`` reads a saved name back, or any result file.

``benchmarks/`` is relative to the current directory unless ``$KAELIX_BENCH_DIR`` names
another. Files are written whole or not at all (a ``.tmp`` file renamed into place).
Imports the standard library and the bench's own model only; never kaelix, numpy, numba or
an optional dependency.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from kaelix.bench._model import BenchRun

ENV_DIR = "KAELIX_BENCH_DIR"
"""The environment variable that moves the saved results away from ``./benchmarks``."""

DEFAULT_DIR = "benchmarks"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def bench_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where results are saved: ``directory`` when given, else ``$KAELIX_BENCH_DIR``, else
    ``benchmarks`` under the current directory."""
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def check_name(name: str) -> str:
    """``name`` when it can name a saved result (letters, digits, ``.``, ``_`` and ``-``,
    starting with a letter or digit, at most 100 characters, no ``.json``); raises
    ValueError otherwise."""
    if not _NAME.fullmatch(name) or len(name) > 100 or name.endswith(".json"):
        raise ValueError(
            f"A saved result's name is up to 100 letters, digits, '.', '_' and '-', starting "
            f"with a letter or digit, without .json (such as 'main' or 'before-fix'); "
            f"got {name!r}"
        )
    return name


def saved_path(name: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """``benchmarks/NAME.json``: the latest run saved as ``name``."""
    return bench_dir(directory) / f"{check_name(name)}.json"


def history_dir(name: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """``benchmarks/history/NAME``: every run saved as ``name``, one file each."""
    return bench_dir(directory) / "history" / check_name(name)


def history_stem(run: BenchRun) -> str:
    """``<timestamp>-<commit>`` for a run: its UTC creation time (``20260125T120000Z``, so
    names sort in time order) and the first 12 digits of its git commit, with ``-dirty``
    when tracked files were modified (``nocommit`` without git)."""
    try:
        created = datetime.fromisoformat(run.created)
    except ValueError:
        created = datetime.now(timezone.utc)
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    stamp = created.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    commit = run.machine.get("git_commit")
    label = str(commit)[:12] if commit else "nocommit"
    if commit and run.machine.get("git_dirty"):
        label += "-dirty"
    return f"{stamp}-{label}"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def run_text(run: BenchRun) -> str:
    """The run as the indented UTF-8 JSON every result file holds."""
    return json.dumps(run.to_json(), indent=2, ensure_ascii=False) + "\n"


def save_run(
    run: BenchRun, name: str, directory: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """Write ``run`` as ``benchmarks/NAME.json`` (replacing the previous one) and append it
    to ``benchmarks/history/NAME/``; returns both paths. A second run saved in the same
    second with the same commit gets ``_2``, ``_3``... after its stem."""
    latest = saved_path(name, directory)
    folder = history_dir(name, directory)
    text = run_text(run)
    stem = history_stem(run)
    entry = folder / f"{stem}.json"
    counter = 2
    while entry.exists():
        entry = folder / f"{stem}_{counter}.json"
        counter += 1
    _write_atomically(entry, text)
    _write_atomically(latest, text)
    return latest, entry


def saved_names(directory: str | os.PathLike[str] | None = None) -> list[str]:
    """The names saved under the results directory, sorted."""
    folder = bench_dir(directory)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if _NAME.fullmatch(p.stem))


def load_run(path: str | os.PathLike[str]) -> BenchRun:
    """The run saved in the result file ``path``; raises ValueError naming the file when it
    is not a result file, FileNotFoundError when it does not exist."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable JSON result file: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds JSON but not a result (an object with a 'schema')")
    try:
        return BenchRun.from_json(data)
    except (KeyError, TypeError, ValueError) as error:
        what = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        raise ValueError(f"{path} is not a kaelix.bench result file: {what}") from None


def resolve(name_or_path: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """The file ``--compare NAME_OR_FILE`` reads: ``benchmarks/NAME.json`` when that name
    was saved, else ``NAME_OR_FILE`` as a path. Raises FileNotFoundError saying what was
    looked for and which names are saved."""
    if _NAME.fullmatch(name_or_path) and not name_or_path.endswith(".json"):
        candidate = saved_path(name_or_path, directory)
        if candidate.is_file():
            return candidate
    path = Path(name_or_path)
    if path.is_file():
        return path
    names = saved_names(directory)
    raise FileNotFoundError(
        f"No saved result named {name_or_path!r} in {bench_dir(directory)} and no file "
        f"{name_or_path!r}; saved names: {', '.join(names) or 'none'} (save one with "
        f"--save NAME)"
    )


def _history_order(path: Path) -> tuple[str, int]:
    stem, _, counter = path.stem.partition("_")
    return stem, int(counter) if counter.isdigit() else 0


def history_files(name: str, directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """The history files of ``name``, oldest first (by their names: the UTC time, then the
    ``_2``, ``_3``... of runs saved in the same second)."""
    folder = history_dir(name, directory)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.json"), key=_history_order)


def load_history(
    name: str,
    directory: str | os.PathLike[str] | None = None,
    *,
    limit: int | None = None,
) -> list[BenchRun]:
    """The runs saved as ``name``, oldest first (the last ``limit`` of them when given);
    raises ValueError naming a file that is not a result file."""
    files = history_files(name, directory)
    if limit is not None:
        files = files[-limit:] if limit > 0 else []
    return [load_run(path) for path in files]


__all__ = [
    "DEFAULT_DIR",
    "ENV_DIR",
    "bench_dir",
    "check_name",
    "history_dir",
    "history_files",
    "history_stem",
    "load_history",
    "load_run",
    "resolve",
    "run_text",
    "save_run",
    "saved_names",
    "saved_path",
]
