"""ProcessVectorEnv's protocol with its workers, checked from what the envs themselves record.

- ``send(actions, env_ids)`` with the ids of a group in any order: each env gets its own action
  (an env that echoes its action in its observation).
- A worker that dies inside ``step`` is reported by ``step_wait`` (EnvWorkerError naming it).
- A real SIGINT (sent by another process while the test process is blocked in ``step_wait`` or
  ``recv``) never leaves the env one step behind: a retried ``step_wait``/``recv`` returns the
  interrupted step's results exactly once, ``reset()`` recovers fully, and a new step is refused
  until one of them runs. The envs' observations count their resets and steps, and they step only
  while the test process waits for them (``interrupt_gate.py``), so a call that returns an earlier
  call's results is caught every time, without sleeps.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from support import interrupt_gate  # noqa: E402
from support.tiers import one_fast_case  # noqa: E402
from dqnfast.vector_env import EnvWorkerError, ProcessVectorEnv  # noqa: E402


# -- send(actions, env_ids): the ids in any order ---------------------------------------------------------
class Echo(gym.Env):
    """Observes (its index, the last action it was given)."""

    observation_space = gym.spaces.Box(0, 255, (2,), np.int64)
    action_space = gym.spaces.Discrete(10)

    def __init__(self, index):
        self.index = index

    def reset(self, *, seed=None, options=None):
        return np.array([self.index, 0]), {}

    def step(self, action):
        return np.array([self.index, action]), 0.0, False, False, {}


@pytest.mark.parametrize("as_array", one_fast_case(False, True))
def test_send_gives_each_env_the_action_listed_with_it(as_array):
    """The README: env_ids may list a group's envs in any order; actions[k] goes to env_ids[k]."""
    vec = ProcessVectorEnv([lambda i=i: Echo(i) for i in range(6)], workers=2)  # groups [0, 2, 4] and [1, 3, 5]
    try:
        vec.reset()
        ids = ([4, 0, 2], [5, 3, 1])
        actions = ([1, 2, 3], [4, 5, 6])
        for group, a in zip(ids, actions):
            vec.send(np.array(a), np.array(group) if as_array else group)
        got = {}
        for _ in range(2):
            obs, _, _, _, info = vec.recv()
            assert obs[:, 0].tolist() == info["env_id"].tolist()  # rows in env_id order
            got.update(zip(info["env_id"].tolist(), obs[:, 1].tolist()))
        expected = {i: a for group, acts in zip(ids, actions) for i, a in zip(group, acts)}
        assert got == expected, f"actions the envs received {got}, sent {expected}"
    finally:
        vec.close()


# -- a worker that dies inside step ------------------------------------------------------------------------
class DiesInStep(gym.Env):
    """Env 1 dies inside its second step: ``os._exit(7)``, or (``gate`` given) it tells the test it
    is inside the step and waits there to be SIGKILLed."""

    observation_space = gym.spaces.Box(0, 255, (1,), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, index, gate=None):
        self.index, self.gate, self.t = index, gate, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(1, np.uint8), {}

    def step(self, action):
        self.t += 1
        if self.index == 1 and self.t == 2:
            if self.gate is None:
                os._exit(7)
            notice, go = self.gate
            os.write(notice, b"x")
            os.read(go, 1)  # never comes: the test kills this worker here
        return np.full(1, self.t, np.uint8), 0.0, False, False, {}


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_a_worker_dying_inside_step_is_reported_by_step_wait(how):
    notice_r, notice_w = os.pipe()
    go_r, go_w = os.pipe()
    gate = (notice_w, go_r) if how == "sigkill" else None
    vec = ProcessVectorEnv([lambda i=i: DiesInStep(i, gate) for i in range(2)], workers=2, context="fork")
    try:
        vec.reset()
        assert (vec.step(np.zeros(2, np.int64))[0] == 1).all()
        vec.step_async(np.zeros(2, np.int64))
        if how == "sigkill":
            assert os.read(notice_r, 1) == b"x"  # worker 1 is inside env 1's step
            os.kill(vec._procs[1].pid, signal.SIGKILL)
        code = 7 if how == "exit" else -signal.SIGKILL
        with pytest.raises(EnvWorkerError, match=rf"worker 1 exited \(exit code {code}\)"):
            vec.step_wait()
        assert vec.closed and not any(p.is_alive() for p in vec._procs)
    finally:
        vec.close(terminate=True)
        for fd in (notice_r, notice_w, go_r, go_w):
            os.close(fd)


# -- Ctrl-C while waiting ----------------------------------------------------------------------------------
class Counting(gym.Env):
    """Observes (its index, resets so far, steps since its reset). Every reset and step waits at the
    gate: one byte to ``notice``, then one byte from ``go`` (see interrupt_gate.py)."""

    observation_space = gym.spaces.Box(0, 255, (3,), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, index, notice, go):
        self.index, self.notice, self.go = index, notice, go
        self.resets = self.steps = 0

    def _gate(self):
        os.write(self.notice, b"n")
        os.read(self.go, 1)

    def reset(self, *, seed=None, options=None):
        self._gate()
        self.resets, self.steps = self.resets + 1, 0
        return np.array([self.index, self.resets, self.steps], np.uint8), {}

    def step(self, action):
        self._gate()
        self.steps += 1
        return np.array([self.index, self.resets, self.steps], np.uint8), 0.0, False, False, {}


class Gated:
    """Two Counting envs on two workers, and the gatekeeper process that lets them move."""

    def __init__(self):
        notice_r, notice_w = os.pipe()
        go_r, go_w = os.pipe()
        self.control_r, self.control = os.pipe()
        self.vec = ProcessVectorEnv([lambda i=i: Counting(i, notice_w, go_r) for i in range(2)], workers=2,
                                    context="fork")  # (the workers inherit the pipes)
        os.close(notice_w)  # the workers hold it now: the gatekeeper sees EOF once they have exited
        os.close(go_r)
        fds = [notice_r, go_w, self.control_r]
        self.gate = subprocess.Popen(
            [sys.executable, interrupt_gate.__file__, str(os.getpid()), *map(str, fds),
             *(str(c.fileno()) for c in self.vec._conns)], pass_fds=fds)
        os.close(notice_r)
        os.close(go_w)

    def interrupt_next_wait(self):
        os.write(self.control, b"i")

    def caught(self):
        os.write(self.control, b"a")

    def close(self):
        self.vec.close(terminate=self.gate.poll() is not None)
        try:
            assert self.gate.wait(timeout=60) == 0, "the test process did not wait for its envs"
        finally:
            if self.gate.poll() is None:
                self.gate.kill()
            os.close(self.control)
            os.close(self.control_r)


@pytest.fixture()
def gated():
    if not interrupt_gate.supported():
        pytest.skip("needs /proc/PID/task/TID/syscall (Linux on x86_64 or aarch64)")
    # The gatekeeper's SIGINT must raise KeyboardInterrupt here, as Ctrl-C does in a terminal or a
    # notebook. A process started in the background by a non-interactive shell (nohup cmd &, some CI
    # runners) starts with SIGINT ignored, and Python then installs no handler of its own: the
    # interrupt would never come. So these tests set Python's default handler (and unblock SIGINT)
    # for their duration.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    try:
        g = Gated()
        yield g
        g.close()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, previous)


def counts(obs):
    """Each env's (resets, steps) from its observation."""
    assert obs[:, 0].tolist() == list(range(len(obs)))
    return [tuple(o) for o in obs[:, 1:].tolist()]


def interrupted_in(excinfo, call):
    """Whether the KeyboardInterrupt came from inside ``ProcessVectorEnv.<call>``."""
    return any(entry.name == call and entry.path.name == "vector_env.py" for entry in excinfo.traceback)


A = np.zeros(2, np.int64)


def test_ctrl_c_in_step_wait_then_step_wait_again(gated):
    vec = gated.vec
    assert counts(vec.reset()[0]) == [(1, 0)] * 2
    assert counts(vec.step(A)[0]) == [(1, 1)] * 2
    gated.interrupt_next_wait()
    with pytest.raises(KeyboardInterrupt) as e:
        vec.step(A)  # SIGINT from the gatekeeper while this waits for the envs inside step 2
    gated.caught()
    assert interrupted_in(e, "step_wait")
    with pytest.raises(RuntimeError, match=r"step_wait\(\) was interrupted.*call step_wait\(\) again.*or reset\(\)"):
        vec.step(A)  # a new step would hand back step 2's results as its own
    assert counts(vec.step_wait()[0]) == [(1, 2)] * 2  # step 2, once
    with pytest.raises(RuntimeError, match="no step_async"):
        vec.step_wait()
    assert counts(vec.step(A)[0]) == [(1, 3)] * 2
    assert counts(vec.reset()[0]) == [(2, 0)] * 2
    assert counts(vec.step(A)[0]) == [(2, 1)] * 2


def test_ctrl_c_in_step_wait_then_reset(gated):
    vec = gated.vec
    vec.reset()
    assert counts(vec.step(A)[0]) == [(1, 1)] * 2
    gated.interrupt_next_wait()
    with pytest.raises(KeyboardInterrupt) as e:
        vec.step(A)
    gated.caught()
    assert interrupted_in(e, "step_wait")
    assert counts(vec.reset()[0]) == [(2, 0)] * 2  # step 2's replies dropped, not taken for the reset's
    assert counts(vec.step(A)[0]) == [(2, 1)] * 2
    assert counts(vec.step(A)[0]) == [(2, 2)] * 2


def test_ctrl_c_in_reset_then_reset_again(gated):
    vec = gated.vec
    vec.reset()
    assert counts(vec.step(A)[0]) == [(1, 1)] * 2
    gated.interrupt_next_wait()
    with pytest.raises(KeyboardInterrupt) as e:
        vec.reset()  # SIGINT while the envs are inside reset 2
    gated.caught()
    assert interrupted_in(e, "reset")
    with pytest.raises(RuntimeError, match=r"reset\(\) was interrupted; call reset\(\) again"):
        vec.step(A)  # (the caller has no first observation to act on)
    assert counts(vec.reset()[0]) == [(3, 0)] * 2  # reset 2's replies dropped: these are reset 3's
    assert counts(vec.step(A)[0]) == [(3, 1)] * 2


def test_ctrl_c_in_recv_then_recv_again_then_reset(gated):
    vec = gated.vec
    vec.reset()
    for w in range(2):
        vec.send(A[:1], vec.worker_envs(w))
    gated.interrupt_next_wait()
    with pytest.raises(KeyboardInterrupt) as e:
        vec.recv()  # SIGINT while recv() waits for either worker
    gated.caught()
    assert interrupted_in(e, "recv")
    got = {}
    for _ in range(2):  # each group once, with its step
        obs, _, _, _, info = vec.recv()
        got[int(info["env_id"][0])] = tuple(obs[0, 1:].tolist())
    assert got == {0: (1, 1), 1: (1, 1)}
    with pytest.raises(RuntimeError, match="no send"):
        vec.recv()

    for w in range(2):
        vec.send(A[:1], vec.worker_envs(w))
    gated.interrupt_next_wait()
    with pytest.raises(KeyboardInterrupt) as e:
        vec.recv()
    gated.caught()
    assert interrupted_in(e, "recv")
    assert counts(vec.reset()[0]) == [(2, 0)] * 2  # both groups' step 2 dropped
    assert counts(vec.step(A)[0]) == [(2, 1)] * 2
