"""kaelix's pytest plugin (kaelix.testing.plugin), run inside pytester sessions: fixtures and
their cleanup (after failing tests too), the seed option, the hypothesis profiles, the
report printed under a failing test, and the DeliveryReport assertion message."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import numpy as np
import pytest

from kaelix.validate import DeliveryTracker, check_delivery

pytest_plugins = ["pytester"]

# pytester forgets the modules a session imported, so what the sessions below need is
# imported here first. hypothesis's own plugin imports hypothesis at the end of every
# session (each would import it, and rewrite its asserts, again), and numba cannot be
# imported a second time in one process (its registries live on in compiled code), so the
# validators' kernels are loaded once, by warm_validators.
assert hypothesis


@pytest.fixture(scope="module", autouse=True)
def warm_validators() -> None:
    one = {
        "producer_id": np.ones(1, np.uint64),
        "partition": np.zeros(1, np.uint32),
        "sequence": np.zeros(1, np.uint64),
        "checksum": np.zeros(1, np.uint32),
    }
    tracker = DeliveryTracker()
    tracker.update(one)
    assert tracker.report().ok and check_delivery(one, one).ok


DOC = Path(__file__).resolve().parent.parent / "docs" / "plugin.md"


def _segments(name: str) -> list[str]:
    return [entry for entry in os.listdir("/dev/shm") if name in entry]


def _seed_in_header(result: pytest.RunResult) -> int:
    header = result.stdout.str()
    match = re.search(
        r"kaelix: seed (\d+) \((drawn|given); rerun with --kaelix-seed=(\d+)\)", header
    )
    assert match, header
    assert match[1] == match[3]
    return int(match[1])


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def test_registered_under_pytest11(pytestconfig: pytest.Config) -> None:
    points = importlib.metadata.entry_points(group="pytest11")
    assert any(p.name == "kaelix" and p.value == "kaelix.testing.plugin" for p in points)
    assert pytestconfig.pluginmanager.hasplugin("kaelix")


def test_loading_imports_neither_hypothesis_nor_numba() -> None:
    code = (
        "import sys, kaelix.testing.plugin; "
        "print(sorted(m for m in ('hypothesis', 'numba') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_turned_off_with_p_no_kaelix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_stream(kaelix_stream):\n    pass\n")
    result = pytester.runpytest("-p", "no:kaelix")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'kaelix_stream' not found*"])
    assert "kaelix: seed" not in result.stdout.str()


def test_works_without_hypothesis(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        no_hypothesis="import sys\nsys.modules['hypothesis'] = None  # import fails\n",
        test_it="""
        import kaelix.testing.plugin as plugin

        def test_stream(kaelix_stream, kaelix_seed):
            assert not plugin.register_profiles()
            p = kaelix_stream.producer()
            assert p.send(b"x") == (0, 0)
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no_hypothesis", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=1)


# --------------------------------------------------------------------------------------------
# --kaelix-seed and kaelix_seed
# --------------------------------------------------------------------------------------------

SEED_TEST = """
def test_seed(kaelix_seed):
    print("SEED", kaelix_seed)
"""


def _seed_printed(result: pytest.RunResult) -> int:
    match = re.search(r"SEED (\d+)", result.stdout.str())
    assert match, result.stdout.str()
    return int(match[1])


def test_seed_drawn_per_session_and_shown_in_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SEED_TEST)
    first = pytester.runpytest("-s")
    second = pytester.runpytest("-s")
    first.assert_outcomes(passed=1)
    assert "(drawn;" in first.stdout.str()
    assert _seed_in_header(first) == _seed_printed(first)
    # 32 random bits: two sessions drawing the same seed would be a one-in-4-billion event.
    assert _seed_printed(first) != _seed_printed(second)


@pytest.mark.parametrize(("given", "value"), [("1234", 1234), ("0x10", 16), ("0", 0)])
def test_seed_given(pytester: pytest.Pytester, given: str, value: int) -> None:
    pytester.makepyfile(SEED_TEST)
    result = pytester.runpytest("-s", f"--kaelix-seed={given}")
    result.assert_outcomes(passed=1)
    assert _seed_printed(result) == value
    assert _seed_in_header(result) == value
    assert "(given;" in result.stdout.str()


@pytest.mark.parametrize("given", ["-1", "abc", str(2**64), "1.5"])
def test_seed_refuses_bad_values(pytester: pytest.Pytester, given: str) -> None:
    pytester.makepyfile(SEED_TEST)
    result = pytester.runpytest(f"--kaelix-seed={given}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--kaelix-seed must be an integer from 0 to 2**64 - 1*got '{given}'*"]
    )


def test_failing_test_shows_the_seed_to_rerun_with(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fails(kaelix_seed):
            print("SEED", kaelix_seed)
            assert False

        def test_fails_without_seed():
            assert False
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    seed = _seed_in_header(result)
    out = result.stdout.str()
    assert out.count("kaelix seed") == 1
    assert f"rerun with --kaelix-seed={seed}" in out.split("test_fails_without_seed")[0]
    again = pytester.runpytest(f"--kaelix-seed={seed}")
    assert _seed_printed(again) == seed


# --------------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------------


def test_kaelix_stream_is_in_process_and_closed_after(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import kaelix
        import pytest

        made = []

        def test_default(kaelix_stream):
            made.append(kaelix_stream)
            assert isinstance(kaelix_stream, kaelix.Stream)
            assert not kaelix_stream.shared and kaelix_stream.partitions == 1
            assert kaelix_stream.name.startswith("kxt-")

        @pytest.mark.kaelix_stream(partitions=3, backpressure="error", capacity=5000)
        def test_marker_then_fail(kaelix_stream):
            made.append(kaelix_stream)
            assert (kaelix_stream.partitions, kaelix_stream.backpressure) == (3, "error")
            assert kaelix_stream.capacity == 8192
            assert False, "planned"

        def test_all_closed():
            assert len(made) == 2 and made[0].name != made[1].name
            assert all(stream.closed for stream in made)
        """
    )
    pytester.runpytest().assert_outcomes(passed=2, failed=1)


def test_stream_marker_mistakes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.kaelix_stream(shared=True)
        def test_shared_option(kaelix_stream):
            pass

        @pytest.mark.kaelix_stream(4)
        def test_positional(kaelix_stream):
            pass

        @pytest.mark.kaelix_stream(backpressure="later")
        def test_bad_policy(kaelix_stream):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(
        [
            "*TypeError: @pytest.mark.kaelix_stream cannot set shared=: kaelix_stream is "
            "in-process; use kaelix_shared_stream",
            "*TypeError: @pytest.mark.kaelix_stream takes keyword options only, got "
            "positional (4,)",
            "*ValueError: backpressure must be 'block', 'drop_oldest' or 'error', got 'later'",
        ],
        consecutive=False,
    )


def test_shared_stream_leaves_nothing_in_dev_shm(pytester: pytest.Pytester) -> None:
    names = pytester.path / "names.txt"
    pytester.makepyfile(
        f"""
        import pytest
        from kaelix import Stream

        def note(stream):
            with open({str(names)!r}, "a") as f:
                f.write(stream.name + "\\n")

        @pytest.mark.kaelix_stream(partitions=2)
        def test_passes(kaelix_shared_stream):
            note(kaelix_shared_stream)
            assert kaelix_shared_stream.shared
            other = Stream.open(kaelix_shared_stream.name)
            kaelix_shared_stream.producer().send(b"hello", partition=1)
            assert other.consumer().poll(timeout=1).payload == b"hello"
            other.detach()

        def test_fails(kaelix_shared_stream):
            note(kaelix_shared_stream)
            kaelix_shared_stream.producer().send(b"x")
            raise RuntimeError("planned")

        def test_closed_by_the_test(kaelix_shared_stream):
            note(kaelix_shared_stream)
            kaelix_shared_stream.close()
        """
    )
    pytester.runpytest().assert_outcomes(passed=2, failed=1)
    made = names.read_text().split()
    assert len(made) == 3 and len(set(made)) == 3
    for name in made:
        assert _segments(name) == [], name


def test_stream_factory(pytester: pytest.Pytester) -> None:
    names = pytester.path / "names.txt"
    pytester.makepyfile(
        f"""
        def test_many(kaelix_stream_factory):
            a = kaelix_stream_factory(partitions=2)
            b = kaelix_stream_factory(shared=True, backpressure="drop_oldest")
            c = kaelix_stream_factory("my-name")
            assert kaelix_stream_factory.streams == (a, b, c)
            assert c.name == "my-name" and b.shared and not a.shared
            with open({str(names)!r}, "w") as f:
                f.write(b.name)
            assert False, "planned"
        """
    )
    pytester.runpytest().assert_outcomes(failed=1)
    assert _segments(names.read_text()) == []


# --------------------------------------------------------------------------------------------
# delivery_tracker, kaelix_reports and the failure section
# --------------------------------------------------------------------------------------------

TRACKER_TESTS = """
import numpy as np
import pytest
from kaelix.validate import DeliveryTracker, check_delivery

def columns(sequences, partition=0):
    n = len(sequences)
    return {
        "producer_id": np.ones(n, np.uint64),
        "partition": np.full(n, partition, np.uint32),
        "sequence": np.asarray(sequences, np.uint64),
        "checksum": np.zeros(n, np.uint32),
    }

@pytest.mark.kaelix_tracker(window=128)
def test_tracker_fails(delivery_tracker):
    assert isinstance(delivery_tracker, DeliveryTracker)
    delivery_tracker.update(columns([0, 1, 3, 3]))
    assert delivery_tracker.report().ok

def test_tracker_passes(delivery_tracker):
    delivery_tracker.update(columns([0, 1, 2]))
    assert delivery_tracker.report().ok

def test_tracker_unfed_fails(delivery_tracker):
    assert False, "planned"

def test_reports_fails(kaelix_reports):
    report = check_delivery(columns([0, 1, 2, 3]), columns([0, 2]))
    kaelix_reports.add(report, label="orders")
    kaelix_reports(check_delivery(columns([0]), columns([0])))
    assert report.ok

def test_reports_refuse_other_things(kaelix_reports):
    with pytest.raises(TypeError, match="got int"):
        kaelix_reports.add(3)
"""


def test_failure_prints_the_delivery_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TRACKER_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=3)
    out = result.stdout.str()
    sections = re.findall(r"-+ kaelix delivery report -+\n(.*?)(?=\n[_=-]{5})", out, re.S)
    assert len(sections) == 3, out
    tracker, unfed, reports = sections
    assert tracker.startswith("delivery_tracker:\n  delivery PROBLEMS: 3 of 4 expected")
    assert "lost 1 · duplicated 1" in tracker
    assert "(after 4 messages fed)" in tracker
    assert unfed == "delivery_tracker:\n  no messages fed to the tracker"
    assert reports.startswith("orders:\n  delivery PROBLEMS: 2 of 4 expected")
    assert "\nDeliveryReport:\n  delivery OK: 1 of 1" in reports
    assert "test_tracker_passes" not in out.split("short test summary")[0].split("FAILURES")[1]


def test_report_shown_once_and_on_teardown_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def breaks_at_teardown():
            yield
            raise RuntimeError("teardown broke")

        def test_teardown_only(breaks_at_teardown, delivery_tracker):
            pass

        def test_call_and_teardown(breaks_at_teardown, delivery_tracker):
            assert False, "planned"
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1, errors=2)
    assert result.stdout.str().count("kaelix delivery report") == 2


def test_failure_report_survives_a_broken_tracker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_breaks(delivery_tracker):
            delivery_tracker._messages = 1  # a report() that raises
            delivery_tracker._table = None
            assert False, "planned"
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["delivery_tracker:", "  (no report: TypeError: *"])
    result.stdout.fnmatch_lines(["*AssertionError: planned*"])


def test_assertrepr_for_delivery_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import numpy as np
        from kaelix.validate import check_delivery

        def columns(sequences):
            n = len(sequences)
            return {
                "producer_id": np.ones(n, np.uint64),
                "partition": np.zeros(n, np.uint32),
                "sequence": np.asarray(sequences, np.uint64),
                "checksum": np.zeros(n, np.uint32),
            }

        def test_counts():
            sent = columns([0, 1, 2, 3])
            assert check_delivery(sent, columns([0, 1, 1, 3])) == check_delivery(sent, sent)

        def test_examples_only():
            sent = columns([0, 1, 2, 3])
            assert check_delivery(sent, columns([0, 1, 2])) == check_delivery(
                sent, columns([1, 2, 3])
            )
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            # "AssertionError: " comes first or not depending on how pytest shortens the
            # explanation, which it does differently on CI (CI set) and off it.
            "E       *assert DeliveryReport(PROBLEMS, 3 delivered) == "
            "DeliveryReport(ok, 4 delivered)",
            "E         counts that differ (left != right):",
            "E           delivered: 3 != 4",
            "E           lost: 1 != 0",
            "E           duplicated: 1 != 0",
            "E         left:",
            "E           delivery PROBLEMS: 3 of 4 expected messages delivered*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E           none: only the examples differ",
            "E           examples[[]'lost'[]]: (Example(*sequence=3*) != (Example(*sequence=0*)",
        ]
    )


# --------------------------------------------------------------------------------------------
# Hypothesis profiles
# --------------------------------------------------------------------------------------------


@pytest.fixture
def restore_profile() -> Iterator[None]:
    from hypothesis import settings

    name = settings.get_current_profile_name()
    yield
    settings.load_profile(name)


@pytest.mark.usefixtures("restore_profile")
@pytest.mark.parametrize(
    ("profile", "examples", "derandomize"),
    [("kaelix-dev", 20, False), ("kaelix-ci", 200, True), ("kaelix-thorough", 2000, False)],
)
def test_profiles(
    pytester: pytest.Pytester, profile: str, examples: int, derandomize: bool
) -> None:
    pytester.makepyfile(
        f"""
        from hypothesis import given, settings, strategies as st

        def test_profile():
            assert settings.get_current_profile_name() == {profile!r}
            assert settings.default.max_examples == {examples}
            assert settings.default.derandomize is {derandomize}
            assert settings.default.deadline is None

        @settings(max_examples=3)  # on top of the profile
        @given(st.integers())
        def test_runs(n):
            pass
        """
    )
    pytester.runpytest(f"--hypothesis-profile={profile}").assert_outcomes(passed=2)


def test_profiles_in_a_fresh_process(pytester: pytest.Pytester) -> None:
    # Registered before hypothesis's own plugin loads the profile, with hypothesis not yet
    # imported when pytest starts.
    pytester.makepyfile(
        """
        from hypothesis import settings

        def test_profile():
            assert settings.get_current_profile_name() == "kaelix-ci"
        """
    )
    result = pytester.runpytest_subprocess("--hypothesis-profile=kaelix-ci")
    result.assert_outcomes(passed=1)


def test_profiles_do_not_inherit_the_active_profile() -> None:
    # hypothesis loads its derandomized "ci" profile whenever CI is set; the kaelix profiles
    # must mean the same thing on a developer's machine and on CI.
    from hypothesis import settings

    from kaelix.testing.plugin import register_profiles

    active = settings.get_current_profile_name()
    settings.register_profile("kaelix-test-active", derandomize=True, max_examples=7)
    settings.load_profile("kaelix-test-active")
    try:
        assert register_profiles()
        dev = settings.get_profile("kaelix-dev")
        assert dev.derandomize is False
        assert dev.database is not None
        assert settings.get_profile("kaelix-thorough").derandomize is False
    finally:
        settings.load_profile(active)
        register_profiles()


def test_register_profiles_for_conftests() -> None:
    from hypothesis import settings

    from kaelix.testing.plugin import PROFILES, register_profiles

    assert register_profiles()
    assert set(PROFILES) == {"kaelix-dev", "kaelix-ci", "kaelix-thorough"}
    assert settings.get_profile("kaelix-thorough").stateful_step_count == 100


# --------------------------------------------------------------------------------------------
# docs/plugin.md
# --------------------------------------------------------------------------------------------


def test_doc_example_test_passes(pytester: pytest.Pytester) -> None:
    text = DOC.read_text(encoding="utf-8")
    first = re.search(r"```python\n(.*?)```", text, re.S)
    assert first and "def test_orders_arrive(" in first[1]
    pytester.makepyfile(first[1])
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_doc_lists_every_fixture_and_profile(pytestconfig: pytest.Config) -> None:
    from kaelix.testing import plugin

    text = DOC.read_text(encoding="utf-8")
    manager = pytestconfig.pluginmanager
    fixtures = [
        name
        for name, value in vars(plugin).items()
        if getattr(value, "_fixture_function_marker", None) is not None
        or type(value).__name__ == "FixtureFunctionDefinition"
    ]
    assert manager.get_plugin("kaelix") is not None
    assert len(fixtures) == 6, fixtures
    for name in [
        *fixtures,
        *plugin.PROFILES,
        "--kaelix-seed",
        "@pytest.mark.kaelix_stream(",
        "@pytest.mark.kaelix_tracker(",
    ]:
        assert f"`{name}" in text, name
