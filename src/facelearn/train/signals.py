"""Stopping on a signal without losing work.

Clusters send SIGTERM before they kill a preempted job, and a user presses Ctrl-C (SIGINT). While a
:class:`StopOnSignal` is active the first of either only sets ``requested``: the engine finishes the
step, writes a checkpoint, says where, and exits with the conventional status (128 + signal
number). A second signal stops at once (``KeyboardInterrupt``). Handlers can only be installed in
the main thread; elsewhere (a library caller's thread) the default behaviour is kept.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("facelearn.train")


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
