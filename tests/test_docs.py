"""The README's tour runs as written, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _blocks(path: Path, language: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_readme_python_blocks_run() -> None:
    blocks = _blocks(ROOT / "README.md", "python")
    assert blocks, "the README has a tour"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def test_readme_has_exactly_two_quick_start_commands() -> None:
    commands = [block.strip() for block in _blocks(ROOT / "README.md", "bash")]
    assert commands == [
        'pip install ".[bench]" && python -m kaelix.bench',
        'pip install ".[test]" && python -m pytest',
    ]


def test_ci_runs_the_readme_test_command() -> None:
    test_command = _blocks(ROOT / "README.md", "bash")[1].strip()
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines
