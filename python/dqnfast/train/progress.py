"""What the trainer shows while it runs: a progress bar and the agent steps per second."""
from __future__ import annotations

import time
from collections import deque
from typing import Any


class Progress:
    """A tqdm bar when tqdm is installed (steps, SPS, epsilon, last returns); periodic lines otherwise."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.enabled, self.total = enabled, total
        self.bar = None
        self._last_line = 0.0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=1.0,
                                smoothing=0.05)
        self.n = initial

    def update(self, step: int, **postfix: Any) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if time.monotonic() - self._last_line > 1.0:
                self.bar.set_postfix_str(" ".join(f"{k}={v}" for k, v in postfix.items()), refresh=False)
                self._last_line = time.monotonic()
        elif time.monotonic() - self._last_line > 10.0:
            print(f"step {step}/{self.total} " + " ".join(f"{k}={v}" for k, v in postfix.items()), flush=True)
            self._last_line = time.monotonic()

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class StepRate:
    """Agent steps per second over the last ~30 s (one sample per second at most)."""

    def __init__(self) -> None:
        self._samples: deque = deque(maxlen=30)

    def __call__(self, step: int) -> float:
        now = time.perf_counter()
        if not self._samples or now - self._samples[-1][0] >= 1.0:
            self._samples.append((now, step))
        t0, s0 = self._samples[0]
        return (step - s0) / (now - t0) if now - t0 > 1e-3 else 0.0
