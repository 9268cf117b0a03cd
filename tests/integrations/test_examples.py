"""The examples run end to end and do what a DQN script must, checked against independent records.

Each test imports an example script as a module and runs its main() with command-line arguments, as a
user would run it, with recorders patched around its parts (tests/support/example_probes.py): the env's own
resets and steps, the buffer's samples, both networks, the optimizer and the epsilon schedule. From
those records the test rebuilds every transition and state itself and checks that the buffer holds
exactly them, that greedy actions are the argmax of the online network on the right state, that each
optimizer step applies the DQN loss gradient of the batch just sampled (not an accumulated one), that
the target network equals the online one as of its last sync step, and the epsilon schedule.
"""
from __future__ import annotations

import hashlib
import math
import random
import re
import sys
from typing import List, Sequence, Tuple

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ale_py")
import torch  # noqa: E402

from support.example_probes import EnvStep, Probe, install_cleanrl_dqn, install_cleanrl_sb3_style, load_example  # noqa: E402

pytestmark = pytest.mark.slow  # the example scripts' runs


GAMMA = 0.99  # the scripts' default, used by the reference loss


@pytest.fixture()
def restore_global_rngs():
    """The scripts seed random, numpy and torch globally; give other tests their state back."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])


def run_example(module, argv: Sequence[str], monkeypatch, capsys) -> str:
    monkeypatch.setattr(sys, "argv", [module.__file__, *argv])
    module.main()
    return capsys.readouterr().out


# ---- expectations computed by the test ---------------------------------------------------------------
def expected_epsilon(start: float, end: float, duration: float, t: int) -> float:
    return end + (start - end) * max(0.0, 1.0 - t / duration)


def zero_padded_stack(frames: List[np.ndarray], stack: int) -> np.ndarray:
    """The newest `stack` frames of an episode, oldest first, zeros before its first frame."""
    newest = frames[-stack:]
    pad = [np.zeros_like(newest[0])] * (stack - len(newest))
    return np.stack(pad + newest)


def transition_key(obs, action, reward, next_obs, done) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in (np.ascontiguousarray(obs, np.uint8), np.int64(action), np.float32(reward),
                 np.ascontiguousarray(next_obs, np.uint8), np.float32(done)):
        h.update(np.asarray(part).tobytes())
    return h.digest()


# ---- checks shared by both scripts ------------------------------------------------------------------
def check_schedule(probe: Probe, total: int, start_e: float, end_e: float, fraction: float) -> List[float]:
    """linear_schedule is called once per step, with the run's start, end and duration, and gives the
    linear decay to end_e over fraction * total steps. Returns epsilon per step."""
    calls = probe.schedule_calls
    assert [c[3] for c in calls] == list(range(total)), "linear_schedule must be called once per step with t = step"
    duration = fraction * total
    for s, e, d, t, value in calls:
        assert (s, e, d) == (start_e, end_e, duration), f"step {t}: linear_schedule({s}, {e}, {d}, t)"
        assert value == pytest.approx(expected_epsilon(start_e, end_e, duration, t), abs=1e-9), \
            f"epsilon at step {t} is {value}, expected {expected_epsilon(start_e, end_e, duration, t)}"
    return [c[4] for c in calls]


def check_greedy_actions(probe: Probe, epsilon: List[float], states: List[np.ndarray],
                         actions: List[np.ndarray]) -> None:
    """A step acts greedily (one forward of the online network, without grad) with probability
    1 - epsilon; then the network's input is the state the env was in and the action is its argmax."""
    assert probe.greedy_calls == len(probe.greedy), \
        ("the online network ran without grad more than once in a step; only acting should (is the TD target "
         "computed with the online network instead of the target network?)")
    for t, (x, argmax) in sorted(probe.greedy.items()):
        assert np.array_equal(x, states[t]), f"step {t}: the Q-network acted on another state than the env's"
        assert np.array_equal(argmax, actions[t]), \
            f"step {t}: greedy step took action {actions[t]}, the Q-network's argmax is {argmax}"
    never = [t for t, e in enumerate(epsilon) if e == 0.0 and t not in probe.greedy]
    assert not never, f"epsilon is 0 at steps {never[:5]}... but they did not act greedily"
    always = [t for t, e in enumerate(epsilon) if e == 1.0 and t in probe.greedy]
    assert not always, f"epsilon is 1 at steps {always[:5]}... but they acted greedily"
    mixed = [t for t, e in enumerate(epsilon) if 0.0 < e < 1.0]
    mean = sum(1.0 - epsilon[t] for t in mixed)
    sd = math.sqrt(sum(epsilon[t] * (1.0 - epsilon[t]) for t in mixed))
    greedy = sum(t in probe.greedy for t in mixed)
    assert abs(greedy - mean) <= 5 * sd, f"{greedy} greedy steps where 1 - epsilon sums to {mean:.1f} (sd {sd:.1f})"


def check_updates(probe: Probe, update_steps: List[int]) -> None:
    """One optimizer step per training step, each right after its sample, applying exactly the DQN
    loss gradient of that batch (so the gradients were zeroed before backward) and moving q."""
    assert [u.step for u in probe.updates] == update_steps, "optimizer steps at the wrong global steps"
    assert [s for s, _ in probe.samples] == update_steps, "one sample per update, at the update's step"
    assert probe.endings_sampled >= len(update_steps) // 2, "most batches must hold an episode-ending transition"
    for u in probe.updates:
        assert u.sampled_at == u.step
        # (The script and the reference compute the same float32 ops: on one machine the error is 0.)
        assert u.grad_error < 1e-4, (f"step {u.step}: the gradient applied differs from the DQN loss gradient of the "
                                     f"sampled batch by {u.grad_error:.3g} (relative): not zeroed, or a wrong loss")
        assert u.change > 0, f"step {u.step}: the optimizer step did not change the Q-network"


def check_target_syncs(probe: Probe, sync_steps: List[int], total: int) -> None:
    """After every step t the target network equals the online network as it was after the last sync step
    s <= t (syncs happen after that step's update), or as built if there was none."""
    first_update, last_update = probe.updates[0].step, probe.updates[-1].step
    assert any(first_update <= s < last_update for s in sync_steps), \
        "the run must sync the target after an update and update again after that, or a sync bug would not show"
    q_after = [(-1, probe.q_initial)] + [(u.step, u.q_after) for u in probe.updates]

    def q_as_of(step: int):
        return [fp for s, fp in q_after if s <= step][-1]

    for t in range(-1, total):
        last_sync = max([s for s in sync_steps if s <= t], default=-1)
        assert probe.target_after[t] == q_as_of(last_sync), \
            (f"after step {t} the target network is not the online network as of step {last_sync} (syncs at "
             f"{sync_steps[:6]}...)")


def check_samples_are_transitions(probe: Probe, keys: set) -> None:
    """Every sampled row is a transition the env made, with the right done flag."""
    for step, b in probe.samples:
        for i in range(len(b.action)):
            key = transition_key(b.obs[i].numpy(), b.action[i].item(), b.reward[i].item(), b.next_obs[i].numpy(),
                                 b.done[i].item())
            assert key in keys, f"step {step}: sampled row {i} is no transition of the env's record"


def check_last_loss(out: str, probe: Probe) -> None:
    m = re.search(r"last_loss=(\S+)", out)
    assert float(m[1]) == pytest.approx(probe.updates[-1].loss, abs=1e-4, rel=1e-3), \
        "the printed loss is not the DQN loss of the last batch"


# ---- examples/cleanrl_dqn.py ------------------------------------------------------------------------
def cleanrl_dqn_record(events: list, stack: int) -> Tuple[list, List[np.ndarray], List[np.ndarray], List[int]]:
    """From the env's record: per step its transition (as the buffer must hold it), the state the agent
    saw, the action, and its id (the buffer's write number of the step's frame: every episode start and
    every step write one frame)."""
    transitions, states, actions, ids = [], [], [], []
    episode: List[np.ndarray] = []
    writes = 0
    for ev in events:
        if isinstance(ev, tuple):  # a reset: the episode's first frame
            episode = [ev[1]]
            writes += 1
            continue
        assert isinstance(ev, EnvStep)
        state = zero_padded_stack(episode, stack)
        episode.append(ev.obs)
        transitions.append(dict(obs=state, action=ev.action, reward=np.sign(ev.reward),
                                next_obs=zero_padded_stack(episode, stack), terminated=ev.terminated,
                                truncated=ev.truncated))
        states.append(state[None])
        actions.append(np.array([ev.action]))
        ids.append(writes)
        writes += 1
    return transitions, states, actions, ids


# Two runs: a short time limit truncates every episode (and epsilon reaches 0); without one, mostly
# random play loses all lives within the run (an untrained greedy agent never serves the ball again).
@pytest.mark.parametrize("episode_end,max_frames,end_e", [("truncated", 400, 0.0), ("terminated", 108_000, 0.5)])
def test_cleanrl_dqn_example_runs_and_learns(episode_end, max_frames, end_e, monkeypatch, capsys, one_torch_thread,
                                             restore_global_rngs):
    module = load_example("cleanrl_dqn")
    probe = Probe(gamma=GAMMA)
    install_cleanrl_dqn(monkeypatch, module, probe)
    total, starts, freq, sync_every, stack = 300, 200, 10, 50, 4
    out = run_example(module, [
        "--total-timesteps", str(total), "--learning-starts", str(starts), "--train-frequency", str(freq),
        "--batch-size", "4", "--buffer-size", "1000", "--end-e", str(end_e), "--exploration-fraction", "0.5",
        "--target-network-frequency", str(sync_every), "--max-episode-frames", str(max_frames), "--no-cuda"],
        monkeypatch, capsys)
    probe.finish()
    m = re.search(r"done: steps=300 updates=(\d+) buffer_transitions=(\d+) last_loss=(\S+)", out)
    assert m, out[-2000:]
    updates, transitions, loss = int(m[1]), int(m[2]), float(m[3])
    assert updates == 9 and transitions == 300  # updates at steps 210, 220, ..., 290; every step stored
    assert loss == loss, "the TD loss must be a number"

    # The buffer holds exactly the env's transitions: states zero-padded at episode starts, rewards
    # clipped, termination and truncation apart.
    rows, states, actions, ids = cleanrl_dqn_record(probe.env_events, stack)
    assert len(rows) == total
    assert any(r[episode_end] for r in rows), f"the run must have a {episode_end} step, or a dropped flag would not show"
    (rb,) = probe.buffers
    try:
        got = rb.gather(np.array(ids, np.int64))
    except IndexError as e:
        pytest.fail(f"the buffer holds no transition where the env's resets and steps put one ({e}): an episode "
                    "start or a step was not stored, or stored twice")
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        want = np.stack([np.asarray(r[name]) for r in rows]).astype(getattr(got, name).dtype)
        bad = np.flatnonzero([not np.array_equal(a, b) for a, b in zip(getattr(got, name), want)])
        assert not len(bad), f"stored {name} differs from the env's record at steps {bad[:8].tolist()}"
    keys = {transition_key(r["obs"], r["action"], r["reward"], r["next_obs"], r["terminated"]) for r in rows}

    epsilon = check_schedule(probe, total, 1.0, end_e, 0.5)
    check_greedy_actions(probe, epsilon, states, actions)
    check_updates(probe, list(range(starts + freq, total, freq)))
    check_samples_are_transitions(probe, keys)
    check_target_syncs(probe, list(range(0, total, sync_every)), total)
    check_last_loss(out, probe)


# ---- examples/cleanrl_sb3_style_dqn.py --------------------------------------------------------------
def sb3_style_record(probe: Probe, same_step: bool):
    """From the vector env's record: per vector step and env the transition the buffer must hold (None for
    a NEXT_STEP reset step, whose action the env ignored), the states the agent saw, and the actions."""
    prev = probe.vector_reset
    ended = np.zeros(len(prev), bool)
    expected, states, actions = [], [], []
    for s in probe.vector_steps:
        row = []
        for e in range(len(prev)):
            if ended[e] and not same_step:
                row.append(None)
                continue
            real_next = s.final_obs[e] if same_step and (s.terminated[e] or s.truncated[e]) else s.obs[e]
            row.append(dict(obs=prev[e], action=int(s.action[e]), reward=float(s.reward[e]), next_obs=real_next,
                            terminated=bool(s.terminated[e]), truncated=bool(s.truncated[e])))
        expected.append(row)
        states.append(prev)
        actions.append(s.action)
        ended = s.terminated | s.truncated
        prev = s.obs
    return expected, states, actions


# SAME_STEP: mostly random play with a time limit that some episodes reach and others do not (both
# kinds of end); NEXT_STEP: a short time limit (truncations, which the buffer must find out itself) and
# epsilon reaching 0.
@pytest.mark.parametrize("mode,num_envs,max_frames,end_e", [("same-step", 2, 700, 0.5), ("next-step", 1, 300, 0.0)])
def test_cleanrl_sb3_style_example_trains_with_the_sb3_adapter(mode, num_envs, max_frames, end_e, monkeypatch, capsys,
                                                               one_torch_thread, restore_global_rngs):
    """The CleanRL-style script (gymnasium 1.x wrappers, SB3's add/sample calls) trains with
    DqnfastReplayBuffer, which detects first-frame padding and the autoreset mode on its own."""
    pytest.importorskip("stable_baselines3")
    module = load_example("cleanrl_sb3_style_dqn")
    probe = Probe(gamma=GAMMA)
    install_cleanrl_sb3_style(monkeypatch, module, probe)
    steps, starts, freq, sync_every = 600, 300, 10, 100
    args = ["--total-timesteps", str(steps), "--num-envs", str(num_envs), "--autoreset-mode", mode,
            "--max-episode-frames", str(max_frames), "--learning-starts", str(starts), "--train-frequency", str(freq),
            "--batch-size", "4", "--buffer-size", "3000", "--end-e", str(end_e), "--exploration-fraction", "0.5",
            "--target-network-frequency", str(sync_every), "--no-cuda"]
    if mode == "same-step":
        out = run_example(module, args, monkeypatch, capsys)
    else:  # it hid truncations from the buffer (done = terminations)
        with pytest.warns(UserWarning, match="NEXT_STEP reset step"):
            out = run_example(module, args, monkeypatch, capsys)
    probe.finish()
    m = re.search(r"done: steps=600 updates=(\d+) buffer_transitions=(\d+) episode_ends=(\d+) truncations=(\d+) "
                  r"pad=(\S+) autoreset=(\S+) last_loss=(\S+)", out)
    assert m, out[-2000:]
    updates, transitions, ends, truncations = map(int, m.groups()[:4])
    assert updates == 29  # steps 310, 320, ..., 590
    assert truncations >= 1 and (m[5], m[6]) == ("first", mode.replace("-", "_"))
    if mode == "same-step":
        assert transitions == steps * num_envs  # every step stored
    else:  # every step but the reset step after each episode end (the last end may have no reset step yet)
        assert steps * num_envs - ends <= transitions < steps * num_envs
    assert float(m[7]) == float(m[7]), "the TD loss must be a number"

    # The buffer holds exactly the env's transitions (the real final observation of an ended episode,
    # first-frame padded stacks, no NEXT_STEP reset steps), with terminations apart from truncations.
    expected, states, actions = sb3_style_record(probe, mode == "same-step")
    assert len(expected) == steps and len(probe.add_ids) == steps
    assert any(r and r["truncated"] for row in expected for r in row)
    if mode == "same-step":
        assert any(r and r["terminated"] for row in expected for r in row), \
            "the run must end an episode by termination, or a dropped termination flag would not show"
    (rb,) = probe.buffers
    flat = [(k, e, r) for k, row in enumerate(expected) for e, r in enumerate(row)]
    stored = [k_e_r for k_e_r in flat if probe.add_ids[k_e_r[0]][k_e_r[1]] >= 0]
    skipped = [(k, e) for k, e, r in flat if r is None]
    assert [(k, e) for k, e, r in flat if probe.add_ids[k][e] < 0] == skipped, \
        "the buffer must store every transition and skip exactly the NEXT_STEP reset steps"
    assert transitions == len(stored)
    got = rb.store.gather(np.array([probe.add_ids[k][e] for k, e, _ in stored], np.int64))
    dones = rb._get_samples(np.array([probe.add_ids[k][e] for k, e, _ in stored], np.int64)).dones.flatten().numpy()
    for name in ("obs", "action", "reward", "next_obs", "terminated"):
        want = np.stack([np.asarray(r[name]) for _, _, r in stored]).astype(getattr(got, name).dtype)
        have = getattr(got, name).reshape(want.shape)  # (frames of one channel: (stack, 1, 84, 84) per state)
        bad = [(k, e) for (k, e, _), a, b in zip(stored, have, want) if not np.array_equal(a, b)]
        assert not bad, f"stored {name} differs from the env's record at (step, env) {bad[:8]}"
    want_done = np.array([r["terminated"] for _, _, r in stored], np.float32)
    assert np.array_equal(dones, want_done), "SB3's dones must be the terminations only (truncations bootstrap)"
    if mode == "same-step":  # (NEXT_STEP without truncated=: the buffer learns of a truncation one step late)
        want = np.array([r["truncated"] for _, _, r in stored])
        assert np.array_equal(got.truncated, want), "stored truncations differ from the env's record"
    keys = {transition_key(r["obs"], r["action"], r["reward"], r["next_obs"], r["terminated"]) for _, _, r in stored}

    epsilon = check_schedule(probe, steps, 1.0, end_e, 0.5)
    check_greedy_actions(probe, epsilon, states, actions)
    check_updates(probe, list(range(starts + freq, steps, freq)))
    check_samples_are_transitions(probe, keys)
    check_target_syncs(probe, [t for t in range(steps) if t > starts and t % sync_every == 0], steps)
    check_last_loss(out, probe)


@pytest.mark.parametrize("script", ["cleanrl_dqn.py", "cleanrl_sb3_style_dqn.py"])
def test_example_scripts_start_as_commands(script):
    """Run as a user runs them (`python examples/<script>.py --help`): the `__main__` guard calls main(),
    which parses the command line. The tests above import the scripts instead."""
    import os
    import subprocess
    from pathlib import Path

    import dqnfast
    path = Path(__file__).resolve().parents[2] / "examples" / script
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(dqnfast.__file__))}
    r = subprocess.run([sys.executable, str(path), "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--total-timesteps" in r.stdout and "--buffer-size" in r.stdout
