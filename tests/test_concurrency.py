"""Lock-free concurrency: env streams fed from their own threads while other threads sample."""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from dqnfast import ReplayBuffer
from frames import make_frame
from streams import encode_action, reward_of
from test_replay import check_transition

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (24, 25)  # large enough that a copy can overlap an overwrite


def test_threads_feeding_streams_while_threads_sample_never_see_a_torn_or_mixed_state():
    num_envs, steps = 3, 4000
    rb = ReplayBuffer(3 * num_envs * 5, SHAPE, stack=4, num_envs=num_envs, seed=0)  # wraps constantly
    errors, checked, starts = [], [0], [0] * num_envs
    done = threading.Event()

    def feed(env: int) -> None:
        rng = np.random.default_rng(env)
        ep, step = 0, 0
        frames = {}
        rb.start_episode(make_frame(env, ep, 0, SHAPE), env)
        starts[env] += 1
        try:
            for _ in range(steps):
                step += 1
                end = rng.random() < 0.05
                frame = frames.setdefault((ep % 256, step), make_frame(env, ep, step, SHAPE))
                rb.add(encode_action(env, ep, step), reward_of(step), frame, end, False, env)
                if end:
                    ep, step = ep + 1, 0
                    rb.start_episode(make_frame(env, ep, 0, SHAPE), env)
                    starts[env] += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def sample() -> None:
        out = rb.empty_batch(32)
        while not done.is_set():
            if len(rb) == 0:
                continue
            try:
                rb.sample(32, out=out)
                for i in range(32):
                    check_transition(out, i)
                checked[0] += 32
            except Exception as e:
                errors.append(e)
                return

    writers = [threading.Thread(target=feed, args=(e,)) for e in range(num_envs)]
    readers = [threading.Thread(target=sample) for _ in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert not errors, errors[0]
    assert checked[0] > 0
    assert rb.writes == num_envs * steps + sum(starts)
    assert len(rb) == len(rb.valid_indices())  # exact again once quiescent


def compile_stress(tmp_path: Path, flags):
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    exe = tmp_path / "stress"
    cmd = [cxx, "-std=c++17", *flags, f"-I{ROOT / 'cpp'}", str(ROOT / "cpp/tests/stress_frame_store.cpp"),
           "-o", str(exe), "-pthread"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


@pytest.mark.parametrize("args", [["1"], ["3"], ["3", "per"]], ids=["uniform", "n_step", "prioritized"])
def test_cpp_stress_under_thread_sanitizer_is_clean(tmp_path, args):
    exe = compile_stress(tmp_path, ["-O1", "-g", "-fsanitize=thread", "-DDQNFAST_TSAN"])
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66")
    r = subprocess.run([str(exe), "4000", *args], capture_output=True, text=True, env=env, timeout=300)
    assert "ThreadSanitizer" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "failures=0" in r.stdout
    assert int(r.stdout.split("checked_transitions=")[1].split()[0]) >= 2000


@pytest.mark.parametrize("args", [["1"], ["3"], ["3", "per"]], ids=["uniform", "n_step", "prioritized"])
def test_cpp_stress_optimised_build_checks_every_sample(tmp_path, args):
    exe = compile_stress(tmp_path, ["-O2", "-Wall", "-Wextra", "-Werror"])
    r = subprocess.run([str(exe), "100000", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    checked = int(r.stdout.split("checked_transitions=")[1].split()[0])
    assert checked > 0
