"""Lock-free concurrency: env streams fed from their own threads while other threads sample."""
from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from dqnfast import ReplayBuffer
from support.frames import check_stack, make_frame
from support.native import compile_cpp
from support.streams import encode_action, reward_of
from test_replay import check_transition

pytestmark = pytest.mark.slow  # C++ stress and sanitizer builds and runs


ROOT = Path(__file__).resolve().parents[2]
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


TSAN = ["-O1", "-g", "-fsanitize=thread", "-DDQNFAST_TSAN"]
OPTIMISED = ["-O2", "-Wall", "-Wextra", "-Werror"]
TSAN_ENV = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66")

# The last two: a tiny store (4 envs x (stack + 1) = 20 slots, the minimum) with n-step windows and
# prioritized replay, where writers lap each other constantly.
STRESS = {
    "uniform": ["1"],
    "n_step": ["3"],
    "prioritized": ["3", "per"],
    "tiny_n_step_prioritized": ["3", "per", "envs=4", "cap=20"],
    "tiny_one_step_prioritized": ["1", "per", "envs=4", "cap=20"],
}


def stress_counts(stdout: str) -> dict:
    return {k: int(v) for k, v in (w.split("=") for w in stdout.split() if "=" in w)}


@pytest.mark.parametrize("args", STRESS.values(), ids=STRESS.keys())
def test_cpp_stress_under_thread_sanitizer_is_clean(tmp_path, args):
    exe = compile_cpp(tmp_path, "cpp/tests/stress_frame_store.cpp", TSAN)
    r = subprocess.run([str(exe), "4000", *args], capture_output=True, text=True, env=TSAN_ENV, timeout=300)
    assert "ThreadSanitizer" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    counts = stress_counts(r.stdout)
    assert counts["failures"] == 0
    assert counts["checked_transitions"] >= 2000
    assert counts["quiescent_audits"] == 9 and counts["peeked_states"] > 0


@pytest.mark.parametrize("args", STRESS.values(), ids=STRESS.keys())
def test_cpp_stress_optimised_build_checks_every_sample(tmp_path, args):
    exe = compile_cpp(tmp_path, "cpp/tests/stress_frame_store.cpp", OPTIMISED)
    r = subprocess.run([str(exe), "100000", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    counts = stress_counts(r.stdout)
    assert counts["failures"] == 0 and counts["checked_transitions"] > 0
    assert counts["quiescent_audits"] == 9 and counts["peeked_states"] > 0


@pytest.mark.parametrize("flags", [OPTIMISED, TSAN], ids=["optimised", "tsan"])
def test_cpp_writer_races_replayed_deterministically_lose_nothing(tmp_path, flags):
    """A writer paused where a real one can be preempted (test hooks) while others lap the store:
    no n-step link or prioritized leaf of a reused slot is clobbered, len() stays exact, and a second
    writer on a busy stream is refused (cpp/tests/race_regressions.cpp)."""
    exe = compile_cpp(tmp_path, "cpp/tests/race_regressions.cpp", [*flags, "-DDQNFAST_TEST_HOOKS"])
    r = subprocess.run([str(exe), str(tmp_path)], capture_output=True, text=True, env=TSAN_ENV, timeout=300)
    assert "ThreadSanitizer" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "failures=0" in r.stdout and r.stdout.count("\n") == 8


def test_episode_active_and_stacked_are_safe_from_another_thread():
    """Another thread may watch a stream while its own thread feeds it: stacked() is always one
    episode's consecutive frames of that stream (never a half-written state)."""
    rb = ReplayBuffer(64, SHAPE, stack=4, num_envs=1, seed=0)
    rb.start_episode(make_frame(0, 0, 0, SHAPE))
    stop, errors, seen = threading.Event(), [], [0]

    def watch() -> None:
        while not stop.is_set():
            rb.episode_active(0)
            try:
                (env, _, _), _ = check_stack(rb.stacked(0))
                assert env == 0
            except AssertionError as e:
                errors.append(e)
                return
            seen[0] += 1

    t = threading.Thread(target=watch)
    t.start()
    ep, step = 0, 0
    for _ in range(3000):
        step += 1
        end = step == 37
        rb.add(0, 0.0, make_frame(0, ep, step, SHAPE), end)
        if end:
            ep, step = ep + 1, 0
            rb.start_episode(make_frame(0, ep, 0, SHAPE))
    stop.set()
    t.join()
    assert not errors, errors[0]
    assert seen[0] > 0
