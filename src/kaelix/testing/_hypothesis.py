"""hypothesis's entry point into kaelix (``[project.entry-points.hypothesis]``): when
hypothesis is imported with kaelix installed, ``st.from_type(kaelix.Message)``,
``st.from_type(kaelix.MessageBatch)`` and ``st.from_type(kaelix.testing.FaultPlan)`` draw
from kaelix's own strategies."""

from __future__ import annotations


def _hypothesis_setup_hook() -> None:
    from kaelix.testing._valid import register_type_strategies

    register_type_strategies()
