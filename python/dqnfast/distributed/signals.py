"""StopOnSignals: Ctrl-C or SIGTERM asks a learner loop to stop, so it can stop the actors and checkpoint."""
from __future__ import annotations

import signal
import threading
from typing import Any, Dict


class StopOnSignals:
    """``with StopOnSignals() as stop: while not stop.is_set(): ...``

    SIGINT and SIGTERM set the event instead of ending the process; a second one raises
    KeyboardInterrupt, for a user who does not want to wait. The previous handlers come back on exit.
    Enter it after :meth:`ActorPool.start`: ``ray.init`` installs a SIGTERM handler of its own in the
    driver (it calls ``sys.exit``), which would end the process before the checkpoint. Main thread only.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: list = []
        self._previous: Dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.received.append(signal.Signals(signum).name)
        if self.event.is_set():
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping without waiting")
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)

    def __enter__(self) -> "StopOnSignals":
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()
