"""The fuzzing process: runs one target under atheris (libFuzzer) and exits.

Started by ``kaelix.fuzz._runner`` as ``python -m kaelix.fuzz._child TARGET LIBFUZZER_ARGS...``;
libFuzzer owns the process from ``atheris.Fuzz()`` on and ends it itself. Imports atheris,
which the ``test`` extra installs.
"""

from __future__ import annotations

import importlib
import sys
from types import FunctionType, ModuleType
from typing import Any

_INSTRUMENTED = ("kaelix._batch", "kaelix._rings", "kaelix.fuzz._targets")


def _instrument_module(atheris: Any, module: ModuleType) -> None:
    for value in list(vars(module).values()):
        if isinstance(value, FunctionType) and value.__module__ == module.__name__:
            atheris.instrument_func(value)
        elif isinstance(value, type) and value.__module__ == module.__name__:
            for member in list(vars(value).values()):
                function = getattr(member, "__func__", member)
                if isinstance(function, FunctionType):
                    atheris.instrument_func(function)


def main(argv: list[str]) -> None:
    try:
        import atheris  # type: ignore[import-untyped]
    except ImportError:
        sys.exit("kaelix.fuzz needs atheris: pip install 'kaelix[test]' (or atheris>=2.3)")

    from kaelix.fuzz._targets import TARGETS

    target = TARGETS[argv[1]]
    # The compiled core has no libFuzzer coverage (gcc cannot emit it); the Python layers
    # around it (batches, rings, the targets' own checks) guide the search. Only kaelix's
    # own modules are instrumented: instrumenting everything loaded takes a minute.
    for name in _INSTRUMENTED:
        _instrument_module(atheris, importlib.import_module(name))
    atheris.Setup([argv[0], *argv[2:]], target.function)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
