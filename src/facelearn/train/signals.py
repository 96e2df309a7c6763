"""Stopping on a signal without losing work.

Clusters send SIGTERM before they kill a preempted job, and a user presses Ctrl-C (SIGINT). While a
:class:`StopOnSignal` is active the first of either only sets ``requested``: the engine finishes the
step, writes a checkpoint, says where, and exits with the conventional status (128 + signal
number). A second signal stops at once (``KeyboardInterrupt``). Handlers can only be installed in
the main thread; elsewhere (a library caller's thread) the default behaviour is kept.

``timeout`` and SLURM signal the whole process group: the data workers ignore SIGTERM and SIGINT
(:func:`facelearn.data.loader.leave_stop_signals_to_the_main_process`), so the step finishes and the
checkpoint is written. Should a worker die of the signal all the same, the stop disarms torch's
SIGCHLD handler (which would raise wherever the main process is), so the loss shows only when the
next batch is fetched: :meth:`StopOnSignal.next_batch` turns it into :class:`DataLostToTheSignal`,
and the engine checkpoints the last finished step (never a half-done one) and stops as usual.
"""

from __future__ import annotations

import logging
import signal
import threading

from ..errors import FacelearnError

log = logging.getLogger("facelearn.train")


class DataLostToTheSignal(Exception):
    """The data workers died of the stop signal; ``mid_step``: the step had already run the model."""

    def __init__(self, mid_step: bool):
        super().__init__("the data workers died of the stop signal")
        self.mid_step = mid_step


class TrainingStopped(FacelearnError):
    """Stopped on a signal after writing a checkpoint; ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class StopOnSignal:
    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested: int | None = None
        self.previous: dict[int, object] = {}

    def handle(self, signum: int, frame) -> None:
        if self.requested is not None:
            self.restore()
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopped at once")
        self.requested = signum
        # torch's SIGCHLD handler raises wherever the main process is when a worker dies: a no-op
        # (not SIG_DFL: a SIGCHLD already pending would then print a "race condition" traceback)
        self.previous.setdefault(signal.SIGCHLD, signal.signal(signal.SIGCHLD, lambda *_: None))
        log.warning(
            "%s received: finishing this step and writing a checkpoint (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

    def __exit__(self, *exc) -> None:
        self.restore()

    def next_batch(self, batches, mid_step: bool):
        """``next(batches)``; after a stop signal, a failure to fetch is the workers' death by it."""
        try:
            return next(batches)
        except Exception as error:
            if self.requested is None:
                raise
            raise DataLostToTheSignal(mid_step) from error
