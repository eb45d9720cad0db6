"""Coverage-guided fuzzing of every kaelix entry point that takes outside bytes.

``python -m kaelix.fuzz TARGET --runs N [--corpus DIR]`` runs one target under atheris
(libFuzzer); ``python -m kaelix.fuzz --list`` names them. The targets are plain functions of
one ``bytes`` argument, usable without atheris (``TARGETS[name].function(data)``). Nothing in
kaelix imports this package; it imports the public API and, in the fuzzing process only,
atheris (the ``test`` extra).
"""

from kaelix.fuzz._runner import FuzzResult, run
from kaelix.fuzz._targets import TARGETS, UNAVAILABLE, Target, seed_inputs

__all__ = ["TARGETS", "UNAVAILABLE", "FuzzResult", "Target", "run", "seed_inputs"]
