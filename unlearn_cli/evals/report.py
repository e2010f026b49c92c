"""How an evaluation tells what it is doing: progress of its passes, each metric's result, warnings.

The engine calls a `Reporter`; the base class is silent except for warnings (logged), so evaluators run
quietly inside training or tests, and the `eval` command passes one that draws progress bars and a line per
metric. `format_value` writes a result the same way wherever one is shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("unlearn_cli.evals")


class Reporter:
    """Receives an evaluation's progress; override what you want to show."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A pass over `total` units (sequences, prompts); the yielded function advances it."""
        yield lambda _done: None

    def metric_done(self, benchmark: str, name: str, value: object, seconds: float, reused: bool) -> None:
        """A metric's aggregate is known, computed now or reused from an identical earlier run."""

    def warning(self, text: str) -> None:
        logger.warning(text)


def format_value(value: object) -> str:
    """A metric's value as the tables and progress lines show it: four decimals, small values in scientific
    notation, a dash for a missing one."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)
