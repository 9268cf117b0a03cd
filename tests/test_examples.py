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


@pytest.mark.parametrize("mode,num_envs", [("same-step", 2), ("next-step", 1)])
def test_cleanrl_sb3_style_example_trains_with_the_sb3_adapter(mode, num_envs):
    """The CleanRL-style script (gymnasium 1.x wrappers, SB3's add/sample calls) trains with
    DqnfastReplayBuffer, which detects first-frame padding and the autoreset mode on its own."""
    pytest.importorskip("torch")
    pytest.importorskip("ale_py")
    pytest.importorskip("stable_baselines3")
    import dqnfast
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(dqnfast.__file__)), "OMP_NUM_THREADS": "1"}
    steps = 600
    args = ["--total-timesteps", str(steps), "--num-envs", str(num_envs), "--autoreset-mode", mode,
            "--max-episode-frames", "300", "--learning-starts", "300", "--train-frequency", "10", "--batch-size", "4",
            "--buffer-size", "3000", "--end-e", "0.8", "--exploration-fraction", "0.5",
            "--target-network-frequency", "100", "--no-cuda"]
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "cleanrl_sb3_style_dqn.py"), *args], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"done: steps=600 updates=(\d+) buffer_transitions=(\d+) episode_ends=(\d+) truncations=(\d+) "
                  r"pad=(\S+) autoreset=(\S+) last_loss=(\S+)", r.stdout)
    assert m, r.stdout[-2000:]
    updates, transitions, ends, truncations = map(int, m.groups()[:4])
    assert updates == 29  # steps 310, 320, ..., 590
    assert truncations >= 1 and (m[5], m[6]) == ("first", mode.replace("-", "_"))
    if mode == "same-step":
        assert transitions == steps * num_envs  # every step stored
    else:  # every step but the reset step after each episode end (the last end may have no reset step yet)
        assert steps * num_envs - ends <= transitions < steps * num_envs
        assert "NEXT_STEP reset step" in r.stderr  # it hid truncations from the buffer (done = terminations)
    assert float(m[7]) == float(m[7]), "the TD loss must be a number"
