"""SIGINT and SIGTERM: stop at the next step boundary with a checkpoint, never in the middle of a write.

While a run is being set up (loading the model, tokenizing) a signal stops it at once: nothing has been
written yet. While it trains, the first signal only asks the trainer to stop after the current optimizer
step and save a checkpoint (see `pipelines.callbacks.StopOnSignal`); a second one stops at once, saving
nothing more. While final outputs are written, signals wait until the files are in place.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from unlearn_cli.console import console_err
from unlearn_cli.run_folder import RunInterrupted

Phase = Literal["setup", "training", "finishing"]
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass
class StopRequest:
    """The signal received (if any) and the phase of the run, which decides what a signal does."""

    phase: Phase = "setup"
    signum: int | None = None
    deferred: int | None = None

    def handle(self, signum: int, frame: Any = None) -> None:
        name = signal_name(signum)
        if self.phase == "training" and self.signum is None:
            self.signum = signum
            console_err.print(
                f"[yellow]{name} received: stopping after the current step and saving a checkpoint "
                "(send it again to stop at once, saving nothing more)[/]",
                highlight=False,
            )
            return
        if self.phase == "finishing" and self.deferred is None:
            self.deferred = signum
            console_err.print(
                f"[yellow]{name} received while the final outputs are written; stopping once they are in "
                "place (send it again to stop at once)[/]",
                highlight=False,
            )
            return
        raise RunInterrupted(signum, f"{name} received during {self.phase}")


@contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Route SIGINT/SIGTERM to a `StopRequest` for the duration of a run (main thread only)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, request.handle)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
