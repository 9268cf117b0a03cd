"""Lock-free concurrency: env streams fed from their own threads while other threads sample."""
from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from dqnfast import PrioritizedReplayBuffer, ReplayBuffer
from support.frames import check_stack, make_frame
from support.native import compile_cpp
from support.replay_checks import check_transition
from support.streams import encode_action, reward_of

pytestmark = pytest.mark.slow  # C++ stress and sanitizer builds and runs


ROOT = Path(__file__).resolve().parents[2]
SHAPE = (24, 25)  # large enough that a copy can overlap an overwrite


EMPTY = "no sampleable transition"
GAVE_UP = "concurrent writers overwrote every transition drawn"


@pytest.mark.parametrize("kind", ["uniform", "prioritized", "sequences"])
def test_threads_feeding_streams_while_threads_sample_never_see_a_torn_or_mixed_state(kind):
    """Three writer threads lap a tiny store while two threads sample: every row is one episode's
    consecutive frames of one stream, and a call raises only when nothing was sampleable for the
    whole call. Each writer announces the oldest frame of its newest transition; if that frame's
    slot was not handed to another write by the end of a call (frame + capacity >= writes), the
    transition was sampleable throughout the call, and the call may not raise."""
    num_envs, steps, stack, length = 3, 2000 if kind == "uniform" else 1000, 4, 3
    capacity = 3 * num_envs * 5  # wraps constantly
    Buffer = PrioritizedReplayBuffer if kind == "prioritized" else ReplayBuffer
    rb = Buffer(capacity, SHAPE, stack=stack, num_envs=num_envs, seed=0)
    errors, checked, legit, starts = [], [0], [0], [0] * num_envs
    ready = [None] * num_envs  # per writer: the oldest frame of its newest transition (or sequence)
    back = length if kind == "sequences" else stack  # frames before a transition's next frame it needs
    done = threading.Event()

    def feed(env: int) -> None:
        rng = np.random.default_rng(env)
        ep, step = 0, 0
        frames = {}
        seqs = [rb.start_episode(make_frame(env, ep, 0, SHAPE), env)]  # this episode's frames
        starts[env] += 1
        try:
            for _ in range(steps):
                step += 1
                end = rng.random() < 0.05
                frame = frames.setdefault((ep % 256, step), make_frame(env, ep, step, SHAPE))
                seqs.append(rb.add(encode_action(env, ep, step), reward_of(step), frame, end, False, env))
                ready[env] = seqs[max(0, step - back)]
                if end:
                    ep, step = ep + 1, 0
                    seqs = [rb.start_episode(make_frame(env, ep, 0, SHAPE), env)]
                    starts[env] += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def sample() -> None:
        out = rb.empty_prioritized_batch(32) if kind == "prioritized" else rb.empty_batch(32)
        while not done.is_set():
            bound = max((r for r in ready if r is not None), default=None)
            try:
                if kind == "sequences":
                    s = rb.sample_sequences(8, length)
                    for i in range(8):
                        (_, _, step), _ = check_stack(s.frames[i])
                        assert s.mask[i].sum() == min(step, length)
                    checked[0] += 8
                    continue
                rb.sample(32, out=out)
                for i in range(32):
                    check_transition(out, i)
                checked[0] += 32
            except (ValueError, RuntimeError) as e:  # nothing sampleable throughout: allowed, else not
                held = bound is not None and bound + capacity >= rb.writes
                if held or not (EMPTY in str(e) or GAVE_UP in str(e)):
                    errors.append(e)
                    return
                legit[0] += 1
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


RACE_CASES = 21  # cases in cpp/tests/race_regressions.cpp, one line each


@pytest.mark.parametrize("flags", [OPTIMISED, TSAN], ids=["optimised", "tsan"])
def test_cpp_writer_races_replayed_deterministically_lose_nothing(tmp_path, flags):
    """A thread paused where a real one can be preempted (test hooks) while others write: no n-step
    link or prioritized leaf of a reused slot is clobbered, len() stays exact, a second writer on a
    busy stream is refused; no sampler calls the buffer empty while a transition is sampleable,
    stacked() does not say "no frame yet" during a start_episode(), an empty scan while writers move
    on is retried, a snapshot saved while a priority changes loads, and a paused writer lets the
    others write a lap less one frame (cpp/tests/race_regressions.cpp)."""
    exe = compile_cpp(tmp_path, "cpp/tests/race_regressions.cpp", [*flags, "-DDQNFAST_TEST_HOOKS"])
    r = subprocess.run([str(exe), str(tmp_path)], capture_output=True, text=True, env=TSAN_ENV, timeout=300)
    assert "ThreadSanitizer" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "failures=0" in r.stdout and r.stdout.count("\n") == RACE_CASES + 1


EDGE_SCENARIOS = 6  # lines before the summary in cpp/tests/concurrency_edges.cpp's output


@pytest.mark.parametrize("flags, calls", [(OPTIMISED, 20000), (TSAN, 1000)], ids=["optimised", "tsan"])
def test_cpp_concurrency_edges_keep_every_promise(tmp_path, flags, calls):
    """The stress review's scenarios (cpp/tests/concurrency_edges.cpp), counted in calls: no sampler
    raises, and size() never reads 0, while a transition stays sampleable for the whole call (tiny
    n-step stores lapped by 6 writers; sequences in a 150-slot store under heavy writing); stacked()
    never says "no frame yet" while its stream's episodes restart; prioritized snapshots saved
    beside sampling and priority updates all load."""
    exe = compile_cpp(tmp_path, "cpp/tests/concurrency_edges.cpp", flags)
    r = subprocess.run([str(exe), str(calls), str(tmp_path)], capture_output=True, text=True, env=TSAN_ENV,
                       timeout=300)
    assert "ThreadSanitizer" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == EDGE_SCENARIOS + 1 and lines[-1].endswith("failures=0"), r.stdout
    counts = [stress_counts(line) for line in lines[:-1]]
    for c in counts:
        assert c.get("errors_while_held", 0) == 0 and c.get("size0_while_held", 0) == 0
    assert all(c["held_throughout"] > 0 for c in counts if "held_throughout" in c)
    stacked = next(c for c in counts if "stacked_calls" in c)  # its readers go on until they made 10 * calls
    assert stacked["stacked_calls"] >= 10 * calls and stacked["writer_calls"] >= 10 * calls
    assert stress_counts(lines[-1])["checked_calls"] >= 6 * calls


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
