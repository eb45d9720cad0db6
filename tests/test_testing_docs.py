"""docs/testing.md runs as a downstream project would run it: its files are written to a
fresh directory and tested there with pytest in a process of their own, through the public
toolkit only; with a planted bug, its ten-line test finds it and shrinks it to one
message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"
FILE = re.compile(r"# file: (\S+)\n")

pytest_plugins = ["pytester"]


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def project_files() -> dict[str, str]:
    """The files the page shows, by path (blocks that begin with ``# file: PATH``)."""
    files = {}
    for block in blocks():
        named = FILE.match(block)
        if named:
            files[named.group(1)] = block
    return files


def write_project(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    for path, text in files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    (pytester.path / "my_project" / "__init__.py").write_text("", encoding="utf-8")


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "tests")


def test_the_page_shows_a_project_and_its_tests() -> None:
    files = project_files()
    assert set(files) == {
        "my_project/relay.py",
        "tests/test_relay.py",
        "my_project/dedup.py",
        "tests/test_dedup.py",
    }
    # "in ten lines": the consumer's test, imports included (blank lines and the marker not)
    lines = files["tests/test_relay.py"].splitlines()[1:]
    assert len([line for line in lines if line.strip()]) <= 10


def test_the_downstream_tests_pass_on_the_correct_code(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(pytester, project_files())
    result = run(pytester, monkeypatch)
    result.assert_outcomes(passed=2)


def test_a_relay_that_drops_the_last_message_of_a_partition_is_caught_on_one_message(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = project_files()
    correct = "by_partition[partition]]"
    assert files["my_project/relay.py"].count(correct) == 1
    files["my_project/relay.py"] = files["my_project/relay.py"].replace(
        correct, "by_partition[partition][:-1]]"
    )
    write_project(pytester, files)
    result = run(pytester, monkeypatch)
    result.assert_outcomes(failed=1, passed=1)
    output = result.stdout.str()
    # Shrunk to the smallest case: one message, the first of its stream, and it was lost.
    assert "sent=MessageBatch(1 messages, 56 bytes, partitions [0], sequence 0..0)" in output
    assert "lost: p0/part0/seq0@0" in output


def test_a_deduplicator_that_keeps_the_last_copy_is_caught(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second planted bug, found through a fault plan: keeping the last copy of each
    message instead of the first moves it after messages sent later."""
    files = project_files()
    dedup = files["my_project/dedup.py"].replace(
        "for message in batch:", "for message in reversed(list(batch)):"
    )
    files["my_project/dedup.py"] = dedup.replace("from_messages(out)", "from_messages(out[::-1])")
    write_project(pytester, files)
    result = run(pytester, monkeypatch)
    result.assert_outcomes(failed=1, passed=1)
    assert "test_deduplicate_removes_the_copies_and_nothing_else" in result.stdout.str()


def test_the_page_s_other_examples_run() -> None:
    for block in blocks():
        if not FILE.match(block):
            exec(compile(block, str(DOC), "exec"), {"__name__": "testing_md"})
