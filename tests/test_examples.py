"""The examples run end to end (a short smoke run of each, in a subprocess as a user would run it)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_cleanrl_dqn_example_runs_and_learns():
    pytest.importorskip("torch")
    pytest.importorskip("ale_py")
    import dqnfast
    env = {**os.environ,
           "PYTHONPATH": os.path.dirname(os.path.dirname(dqnfast.__file__)),  # this checkout's dqnfast
           "OMP_NUM_THREADS": "1"}  # a smoke run; don't oversubscribe a small shared machine
    args = ["--total-timesteps", "300", "--learning-starts", "200", "--train-frequency", "10", "--batch-size", "4",
            "--buffer-size", "1000", "--end-e", "0.8", "--exploration-fraction", "0.5", "--no-cuda"]
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "cleanrl_dqn.py"), *args], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"done: steps=300 updates=(\d+) buffer_transitions=(\d+) last_loss=(\S+)", r.stdout)
    assert m, r.stdout[-2000:]
    updates, transitions, loss = int(m[1]), int(m[2]), float(m[3])
    assert updates == 9 and transitions == 300  # updates at steps 210, 220, ..., 290; every step stored
    assert loss == loss, "the TD loss must be a number"
