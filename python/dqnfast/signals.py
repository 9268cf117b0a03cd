"""How a training loop hears Ctrl-C and SIGTERM: one place installs the handlers and puts the
previous ones back.

Two ways to react, for two kinds of loop:

- :func:`sigterm_as_interrupt`: SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``), as
  Ctrl-C already does, so a loop that checkpoints on ``KeyboardInterrupt`` (the trainer) stops the
  same way for both. A batch scheduler's SIGTERM then leaves a checkpoint, not a killed process.
- :class:`StopOnSignals`: Ctrl-C and SIGTERM set an event that a loop polls, so it can stop its
  actors and checkpoint at a point of its choosing; a second signal raises ``KeyboardInterrupt``.

Signals reach only the main thread; in any other thread both leave the process's handlers alone.
Enter either after ``ray.init`` (an :class:`~dqnfast.distributed.ActorPool`): Ray installs a SIGTERM
handler of its own in the driver, which calls ``sys.exit`` before any checkpoint.
"""
from __future__ import annotations

import signal
import threading
from typing import Any, Callable, Dict, Iterable

Handler = Callable[[int, Any], None]


def install(signums: Iterable[int], handler: Handler) -> Callable[[], None]:
    """Installs ``handler`` for each signal; returns the function that puts the previous ones back.
    Outside the main thread nothing is installed (and the returned function does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: Dict[int, Any] = {s: signal.signal(s, handler) for s in signums}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)
        previous.clear()

    return restore


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the run stops and writes a checkpoint."""


def sigterm_as_interrupt() -> Callable[[], None]:
    """Makes SIGTERM raise :class:`Terminated` in the main thread; returns the function that puts the
    previous handler back."""
    def on_sigterm(signum: int, frame: Any) -> None:
        raise Terminated()

    return install([signal.SIGTERM], on_sigterm)


class StopOnSignals:
    """``with StopOnSignals() as stop: while not stop.is_set(): ...``

    SIGINT and SIGTERM set the event instead of ending the process; a second one raises
    KeyboardInterrupt, for a user who does not want to wait. The previous handlers come back on exit.
    Enter it after :meth:`ActorPool.start` (see the module's docstring). Main thread only.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: list = []
        self._restore: Callable[[], None] = lambda: None

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
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("StopOnSignals works only in the main thread: signals reach no other")
        self._restore = install(self.SIGNALS, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()
        self._restore = lambda: None
