"""ProcessVectorEnv and make_atari_env(num_envs, workers): env i must give exactly what the single env
with seed + i gives for the same actions, every DQN wrapper included."""
from __future__ import annotations

import os

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
pytest.importorskip("ale_py")

from gymnasium.vector import AutoresetMode  # noqa: E402

from dqnfast.benchmarks import vector as vector_bench  # noqa: E402
from dqnfast import ReplayBuffer  # noqa: E402
from dqnfast.vector_env import ProcessVectorEnv, add_same_step  # noqa: E402
from dqnfast.wrappers import make_atari_env  # noqa: E402


def assert_episode(info, i, ep, where):
    """Env i's episode statistics in ``info`` (gymnasium's layout) are ``ep`` (None: none)."""
    if ep is None:
        assert "_episode" not in info or not info["_episode"][i], where
    else:
        assert info["_episode"][i], where
        assert (info["episode"]["r"][i], info["episode"]["l"][i]) == (ep["r"], ep["l"]), where


def assert_key(info, i, key, env_info, where):
    """Env i's ``info[key]`` (with its mask) is ``env_info[key]``, or absent where env_info has none."""
    if key in env_info:
        assert info[f"_{key}"][i] and info[key][i] == env_info[key], where
    else:
        assert f"_{key}" not in info or not info[f"_{key}"][i], where


def lockstep(vec, singles, steps, action_seed=0):
    """Steps the vector env and the single envs with the same random actions; every observation,
    reward, flag, final frame and episode statistic must be equal, where gymnasium's SAME_STEP
    layout puts them: an ended step's info in ``final_info``, the reset's info on top (with
    ``infos="all"``, ALE's ``lives`` too). Returns counts of what happened."""
    n = len(singles)
    obs, info = vec.reset()
    for i, env in enumerate(singles):
        o, _ = env.reset()
        assert np.array_equal(obs[i], o)
    rng = np.random.default_rng(action_seed)
    seen = {"terminated": 0, "truncated": 0, "episodes": 0, "life_losses": 0}
    all_infos = vec.infos == "all"
    for t in range(steps):
        actions = rng.integers(vec.single_action_space.n, size=n)
        obs, reward, terminated, truncated, info = vec.step(actions)
        for i, env in enumerate(singles):
            o, r, term, trunc, step_info = env.step(int(actions[i]))
            assert (r, term, trunc) == (reward[i], terminated[i], truncated[i]), (t, i)
            top_info = step_info
            if term or trunc:
                seen["terminated" if term else "truncated"] += 1
                assert info["_final_obs"][i] and np.array_equal(info["final_obs"][i], o), (t, i)
                assert info["_final_info"][i], (t, i)
                assert_episode(info["final_info"], i, step_info.get("episode"), (t, i))
                if all_infos:
                    assert_key(info["final_info"], i, "lives", step_info, (t, i))
                o, top_info = env.reset()  # the no-op after a lost life can end the game: an episode here
                seen["life_losses"] += "episode" not in step_info and "episode" not in top_info
            else:
                assert "_final_obs" not in info or not info["_final_obs"][i]
                assert "_final_info" not in info or not info["_final_info"][i]
            assert np.array_equal(obs[i], o), (t, i)
            assert_episode(info, i, top_info.get("episode"), (t, i))
            seen["episodes"] += ("episode" in top_info) + ((term or trunc) and "episode" in step_info)
            if all_infos:
                assert_key(info, i, "lives", top_info, (t, i))
            else:
                assert set(info) <= {"episode", "_episode", "final_obs", "_final_obs", "final_info", "_final_info"}
    return seen


@pytest.mark.parametrize("kw,infos", [
    (dict(noop_max=0), "all"),  # the deterministic setting
    (dict(), "episode"),  # no-op starts: the same RNG draws, since each worker runs the single-env stack itself
    (dict(repeat_action_probability=0.25, max_episode_steps=60), "episode"),  # sticky actions, truncation
])
@pytest.mark.slow
def test_each_env_matches_the_single_env_with_its_seed(kw, infos):
    vec = make_atari_env(num_envs=3, workers=2, seed=7, infos=infos, **kw)
    singles = [make_atari_env(seed=7 + i, **kw) for i in range(3)]
    try:
        seen = lockstep(vec, singles, steps=260)
    finally:
        vec.close()
    # Real games ended, lives were lost (episodic life + FIRE reset), episodes were reported.
    assert seen["terminated"] >= 3 and seen["episodes"] >= 1 and seen["life_losses"] >= 3
    if "max_episode_steps" in kw:
        assert seen["truncated"] >= 1


def test_vector_env_contract():
    vec = make_atari_env(num_envs=2, workers=2, seed=0)
    try:
        assert isinstance(vec, gym.vector.VectorEnv) and isinstance(vec, ProcessVectorEnv)
        assert vec.num_envs == 2 and vec.num_workers == 2
        assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert vec.single_observation_space.shape == (84, 84) and vec.observation_space.shape == (2, 84, 84)
        assert vec.single_action_space.n == 4
        obs, info = vec.reset(seed=[3, None])
        assert obs.shape == (2, 84, 84) and obs.dtype == np.uint8
        assert info["lives"].tolist() == [5, 5] and info["_lives"].all()  # ALE's info, in gymnasium's layout
        a = np.array([1, 2])
        vec.step_async(a)
        with pytest.raises(RuntimeError, match="call step_wait"):
            vec.step_async(a)
        with pytest.raises(RuntimeError, match="call step_wait"):
            vec.reset()
        obs2, reward, term, trunc, _ = vec.step_wait()
        assert reward.dtype == np.float64 and term.dtype == trunc.dtype == np.bool_
        with pytest.raises(RuntimeError, match="no step_async"):
            vec.step_wait()
        # copy=False: the shared frames themselves, overwritten by the next step.
        vec.copy = False
        o1 = vec.step(a)[0]
        o2 = vec.step(a)[0]
        assert np.shares_memory(o1, o2) and not np.shares_memory(obs2, o1)
    finally:
        vec.close()
    with pytest.raises(RuntimeError, match="closed"):
        vec.step(np.array([0, 0]))
    vec.close()  # twice is fine


@pytest.mark.slow
def test_reset_seeds_and_mask():
    # (Without episodic life, so that a reset mid-game is a real reset, not the next life.)
    vec = make_atari_env(num_envs=2, workers=1, seed=0, episodic_life=False)
    single = make_atari_env(seed=0, episodic_life=False)
    try:
        obs, _ = vec.reset(seed=11)  # env i gets 11 + i
        assert np.array_equal(obs[1], make_atari_env(seed=12, episodic_life=False).reset()[0])
        for _ in range(10):
            obs, *_ = vec.step(np.array([3, 3]))
        before = obs.copy()
        obs, _ = vec.reset(seed=[5, None], options={"reset_mask": np.array([True, False])})
        assert np.array_equal(obs[0], single.reset(seed=5)[0]) and np.array_equal(obs[1], before[1])
        with pytest.raises(TypeError, match="reset_mask"):
            vec.reset(options={"reset_mask": np.array([1, 0])})
        with pytest.raises(ValueError, match="one seed per env"):
            vec.reset(seed=[1])
        with pytest.raises(TypeError, match="seed must be an int"):
            vec.reset(seed=1.5)
    finally:
        vec.close()


def test_next_step_autoreset():
    kw = dict(noop_max=0, max_episode_steps=5)
    vec = ProcessVectorEnv([lambda: make_atari_env(seed=1, **kw)], autoreset_mode="NextStep")
    single = make_atari_env(seed=1, **kw)
    try:
        assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        vec.reset()
        single.reset()
        tr = False
        while not tr:  # FIRE reset's two steps count: the 3rd step truncates
            obs, reward, term, trunc, info = vec.step(np.array([0]))
            o, r, _, tr, _ = single.step(0)
            assert trunc[0] == tr and np.array_equal(obs[0], o) and "final_obs" not in info
        obs, reward, term, trunc, info = vec.step(np.array([3]))  # the reset: action ignored
        assert np.array_equal(obs[0], single.reset()[0]) and reward[0] == 0 and not term[0] and not trunc[0]
    finally:
        vec.close()


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(num_envs=2, workers=0), ValueError, "workers must be positive"),
    (dict(num_envs=2, workers=3), ValueError, "workers must be at most num_envs=2"),
    (dict(num_envs=2, workers=1.0), TypeError, "workers must be an int"),
    (dict(num_envs=2, workers=2, vectorization="async"), ValueError, "workers= is for vectorization='processes'"),
    (dict(num_envs=2, vectorization="threads"), ValueError, "'processes'"),
    (dict(num_envs=2, infos="episode"), ValueError, "infos='episode' is for vectorization='processes'"),
    (dict(num_envs=2, workers=2, infos="some"), ValueError, "infos must be 'all' or 'episode'"),
])
def test_make_atari_env_worker_args(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        make_atari_env(**kw)


def test_one_env_on_one_worker_is_still_a_vector_env():
    vec = make_atari_env(num_envs=1, workers=1, seed=0)
    try:
        assert isinstance(vec, ProcessVectorEnv) and vec.reset()[0].shape == (1, 84, 84)
    finally:
        vec.close()
    assert not isinstance(make_atari_env(num_envs=1, vectorization="async"), gym.vector.VectorEnv)  # as before


def test_bad_actions_are_refused():
    vec = make_atari_env(num_envs=2, workers=1, seed=0)
    try:
        vec.reset()
        with pytest.raises(ValueError, match=r"shape \(2,\)"):
            vec.step(np.array([0, 1, 2]))
        with pytest.raises(TypeError, match="integers"):
            vec.step(np.array([0.5, 1.0]))
        with pytest.raises(ValueError, match=r"in \[0, 4\)"):
            vec.step(np.array([0, 4]))
        assert vec.step(np.array([0, 1]))[0].shape == (2, 84, 84)  # still usable
    finally:
        vec.close()


@pytest.mark.slow
def test_send_recv_each_env_matches_the_single_env_with_its_seed():
    """EnvPool-style send/recv: each worker's envs are stepped again as soon as they come back, so
    the envs run at their own pace; each still gives exactly its single env's trajectory."""
    kw = dict(repeat_action_probability=0.25, max_episode_steps=60)
    vec = make_atari_env(num_envs=3, workers=2, seed=7, **kw)  # worker 0: envs 0 and 2; worker 1: env 1
    singles = [make_atari_env(seed=7 + i, **kw) for i in range(3)]
    steps = 150
    rng = np.random.default_rng(3)
    actions = rng.integers(vec.single_action_space.n, size=(3, steps))  # env i's t-th action
    taken = np.zeros(3, np.int64)
    seen = {"terminated": 0, "truncated": 0, "episodes": 0}
    try:
        obs, _ = vec.reset()
        for i, env in enumerate(singles):
            assert np.array_equal(obs[i], env.reset()[0])
        assert [vec.worker_envs(w).tolist() for w in range(2)] == [[0, 2], [1]]
        for w in range(2):
            ids = vec.worker_envs(w)
            vec.send(actions[ids, 0], ids)
            taken[ids] = 1
        pending = 2
        while pending:
            obs, reward, terminated, truncated, info = vec.recv()
            ids = info["env_id"]
            assert ids.tolist() in ([0, 2], [1])
            for k, i in enumerate(ids):
                o, r, term, trunc, step_info = singles[i].step(int(actions[i, taken[i] - 1]))
                assert (r, term, trunc) == (reward[k], terminated[k], truncated[k]), (i, taken[i])
                top_info = step_info
                if term or trunc:
                    seen["terminated" if term else "truncated"] += 1
                    assert info["_final_obs"][k] and np.array_equal(info["final_obs"][k], o), (i, taken[i])
                    assert_episode(info["final_info"], k, step_info.get("episode"), (i, taken[i]))
                    seen["episodes"] += "episode" in step_info
                    o, top_info = singles[i].reset()
                assert np.array_equal(obs[k], o), (i, taken[i])
                assert_episode(info, k, top_info.get("episode"), (i, taken[i]))
                seen["episodes"] += "episode" in top_info
            if taken[ids[0]] < steps:
                vec.send(actions[ids, taken[ids]], ids)
                taken[ids] += 1
            else:
                pending -= 1
    finally:
        vec.close()
    assert (taken == steps).all()
    assert seen["terminated"] >= 1 and seen["truncated"] >= 1 and seen["episodes"] >= 1


@pytest.mark.parametrize("layout", ["gymnasium", "dense"])
def test_add_same_step_ends_at_the_final_frame_and_starts_the_next_episode(layout):
    """One SAME_STEP vector step of envs 2 and 0 (a send/recv group, rows in that order): env 0's
    episode ended, so its transition ends at final_obs and obs starts its next episode. final_obs in
    gymnasium's layout (an object array, None where no episode ended) or as one array of frames."""
    rb = ReplayBuffer(64, (2, 2), stack=2, num_envs=3)
    rb.start_episodes(np.stack([np.full((2, 2), 10 * e, np.uint8) for e in range(3)]))
    obs = np.stack([np.full((2, 2), 21, np.uint8), np.full((2, 2), 99, np.uint8)])  # env 2, env 0 (reset)
    final = np.stack([np.zeros((2, 2), np.uint8), np.full((2, 2), 1, np.uint8)])
    if layout == "gymnasium":
        last = final[1]
        final = np.full(2, None, dtype=object)
        final[1] = last
    ended = add_same_step(rb, np.array([3, 1]), obs, np.array([0.5, 1.0]), np.array([False, True]),
                          np.array([False, False]), {"final_obs": final, "_final_obs": np.array([False, True])},
                          envs=np.array([2, 0]))
    assert ended.tolist() == [0]
    assert len(rb) == 2
    b = rb.sample(64)
    got = {int(o[-1, 0, 0]): (int(a), float(r), bool(t), int(n[-1, 0, 0])) for o, a, r, t, n in
           zip(b.obs, b.action, b.reward, b.terminated, b.next_obs)}
    assert got == {20: (3, 0.5, False, 21), 0: (1, 1.0, True, 1)}  # env 0 ends at its final frame, not at 99
    assert rb.stacked(0)[-1, 0, 0] == 99 and rb.stacked(0)[0, 0, 0] == 0  # a new episode: zero padding
    assert rb.stacked(2)[:, 0, 0].tolist() == [20, 21] and rb.stacked(1)[:, 0, 0].tolist() == [0, 10]


def test_send_recv_rules():
    vec = ProcessVectorEnv([lambda: _Boom(0) for _ in range(4)], workers=2)  # groups [0, 2] and [1, 3]
    try:
        vec.reset()
        with pytest.raises(RuntimeError, match="no send"):
            vec.recv()
        with pytest.raises(ValueError, match=r"whole worker groups.*\[\[0, 2\]\]"):
            vec.send([0], [0])
        with pytest.raises(ValueError, match="whole worker groups"):
            vec.send([0, 0, 0], [0, 2, 1])
        with pytest.raises(ValueError, match="distinct envs"):
            vec.send([0, 0], [0, 0])
        with pytest.raises(ValueError, match="distinct envs"):
            vec.send([0], [4])
        with pytest.raises(ValueError, match="actions must be 2 integers"):
            vec.send([0], [0, 2])
        with pytest.raises(ValueError, match=r"actions must be in \[0, 2\)"):
            vec.send([0, 5], [0, 2])
        with pytest.raises(ValueError, match="env_ids must be a non-empty 1-D sequence"):
            vec.send([0, 0], [[0, 2]])
        for not_ints in ([0.0, 2.0], np.array([0.0, 2.0]), [False, True]):  # never coerced to env ids
            with pytest.raises(ValueError, match="env_ids must be a non-empty 1-D sequence of env indices"):
                vec.send([0, 0], not_ints)
        with pytest.raises(IndexError, match=r"worker must be in \[0, 2\)"):
            vec.worker_envs(2)
        vec.send(np.array([1, 0]), [2, 0])  # any order within the group
        with pytest.raises(RuntimeError, match=r"worker\(s\) \[0\] are still stepping"):
            vec.send([0, 0], [0, 2])
        with pytest.raises(RuntimeError, match="recv"):
            vec.step_async(np.zeros(4, np.int64))
        with pytest.raises(RuntimeError, match="recv"):
            vec.reset()
        vec.send([1, 1], [1, 3])
        got = [vec.recv(), vec.recv()]
        assert sorted(r[4]["env_id"].tolist() for r in got) == [[0, 2], [1, 3]]
        for obs, reward, terminated, truncated, info in got:
            assert obs.shape == (2, 2, 3) and (obs == 1).all() and reward.tolist() == [1.0, 1.0]
        vec.step(np.zeros(4, np.int64))  # the synchronous API works again
        vec.send([0, 0], [1, 3])
    finally:
        vec.close()  # with a send pending: lets it finish, then stops the workers
    assert vec.closed and not any(p.is_alive() for p in vec._procs)


def test_a_worker_error_reaches_recv():
    vec = ProcessVectorEnv([lambda: _Boom(2), lambda: _Boom(0)], workers=2)
    vec.reset()
    vec.send([0], [0])
    vec.recv()
    vec.send([0], [0])
    with pytest.raises(RuntimeError, match="(?s)worker 0.*boom at step 2"):
        vec.recv()
    assert vec.closed


class _Boom(gym.Env):
    """Raises in step ``fail_at`` (or in its constructor when fail_at is None)."""

    observation_space = gym.spaces.Box(0, 255, (2, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, fail_at, in_worker_only=False):
        import multiprocessing
        if fail_at is None and (not in_worker_only or multiprocessing.parent_process() is not None):
            raise ValueError("boom in constructor")
        self.fail_at, self.t = fail_at, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros((2, 3), np.uint8), {}

    def step(self, action):
        self.t += 1
        if self.t == self.fail_at:
            raise ValueError(f"boom at step {self.t}")
        return np.full((2, 3), self.t, np.uint8), 1.0, False, False, {}


@pytest.mark.slow
def test_worker_errors_are_raised_with_their_traceback():
    vec = ProcessVectorEnv([lambda: _Boom(3), lambda: _Boom(0)], workers=2)
    vec.reset()
    vec.step(np.array([0, 1]))
    obs = vec.step(np.array([0, 1]))[0]
    assert (obs == 2).all()
    with pytest.raises(RuntimeError, match="(?s)worker 0.*boom at step 3"):
        vec.step(np.array([0, 1]))
    assert vec.closed
    with pytest.raises(RuntimeError, match="(?s)worker 1.*boom in constructor"):
        ProcessVectorEnv([lambda: _Boom(0), lambda: _Boom(None, in_worker_only=True)], workers=2)


def test_constructor_checks():
    with pytest.raises(ValueError, match="non-empty sequence of callables"):
        ProcessVectorEnv([])
    with pytest.raises(ValueError, match="autoreset_mode"):
        ProcessVectorEnv([lambda: _Boom(0)], autoreset_mode="Disabled")
    with pytest.raises(TypeError, match="Discrete action space"):
        ProcessVectorEnv([lambda: gym.make("Pendulum-v1")])


def test_spawned_workers():
    """The envs travel to spawned workers too (macOS and Windows start processes that way)."""
    vec = ProcessVectorEnv([lambda: make_atari_env(seed=2, noop_max=0)], context="spawn")
    try:
        obs, _ = vec.reset()
        assert np.array_equal(obs[0], make_atari_env(seed=2, noop_max=0).reset()[0])
    finally:
        vec.close()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (read from /proc, not from the env)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("call", ["step", "recv"])
def test_step_timeout_gives_up_on_a_stopped_worker_and_names_it(call):
    """A worker frozen with SIGSTOP would block a step forever; with step_timeout the step raises
    EnvWorkerError naming that worker, its envs and its process, and the env is closed with every
    worker gone (a stopped process ignores SIGTERM until it is continued)."""
    import signal

    from dqnfast.vector_env import EnvWorkerError

    vec = ProcessVectorEnv([lambda: gym.make("CartPole-v1")] * 3, workers=3, step_timeout=5)
    pids = vec.worker_pids
    try:
        vec.reset(seed=0)
        vec.step(np.zeros(3, np.int64))  # healthy workers answer in time
        os.kill(pids[1], signal.SIGSTOP)
        with pytest.raises(EnvWorkerError, match=rf"no reply within step_timeout=5 s from worker 1 \(envs \[1\], "
                                                 rf"pid {pids[1]}\): hung or stopped"):
            if call == "step":
                vec.step(np.zeros(3, np.int64))
            else:
                vec.send([0], [1])
                vec.recv()
        assert vec.closed
        assert not any(_alive(pid) for pid in pids)
    finally:
        vec.close(terminate=True)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_step_timeout_must_be_positive_seconds():
    make = [lambda: gym.make("CartPole-v1")]
    with pytest.raises(TypeError, match=r"step_timeout \(seconds, or None\) must be a number, got str"):
        ProcessVectorEnv(make, step_timeout="5")
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="step_timeout must be a finite number of seconds > 0"):
            ProcessVectorEnv(make, step_timeout=bad)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_make_atari_env_workers_under_a_program_wide_start_method(method):
    """A program that sets the start method for everything (importing torchrl sets spawn) still gets
    working env workers: a spawned or forkserver worker has none of its parent's registrations,
    so ALE's ids must be registered where the env is made. Run in a fresh interpreter, since the
    start method can be set only once per program."""
    import subprocess
    import sys
    code = f"""
import multiprocessing as mp
mp.set_start_method({method!r})
import numpy as np
from dqnfast.wrappers import make_atari_env
if __name__ == "__main__":
    vec = make_atari_env(num_envs=2, workers=2, seed=5, noop_max=0)
    try:
        obs, _ = vec.reset()
        for i in range(2):
            assert np.array_equal(obs[i], make_atari_env(seed=5 + i, noop_max=0).reset()[0]), i
    finally:
        vec.close()
    print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.slow  # about 30 s: the bench starts several vector envs and worker sets
def test_bench_runs_in_tiny_mode(capsys):
    """`dqnfast bench vector` end to end on a few steps, so the code cannot rot (timings not checked)."""
    assert vector_bench.main(["--steps", "16", "--repeats", "1", "--capacity", "400"]) == 0
    out = capsys.readouterr().out
    assert "AtariVectorEnv alone" in out and "dqnfast data path" in out and "goal >= 1.8x" in out
    assert "ceiling: 2 independent process(es)" in out and "data path over the ceiling, 2 workers" in out
    assert "the same data path on send/recv, 2 process(es)" in out
    with pytest.raises(SystemExit):
        vector_bench.main(["--workers", "1,3"])
    assert "between 1 and --num-envs" in capsys.readouterr().err
    assert vector_bench.rom_name("ALE/MsPacman-v5") == "ms_pacman"


@pytest.mark.slow
@pytest.mark.parametrize("num_envs,workers", [(2, 1), (2, 2), (3, 2)])
def test_bench_ceiling_steps_every_env(num_envs, workers):
    """The ceiling row's processes step every env exactly `steps` times between them (bench_ceiling
    counts them and raises otherwise), timed from the common start to the last one's end."""
    t = vector_bench.bench_ceiling("ALE/Breakout-v5", 30, num_envs, workers, 84, 0)
    assert t.wall > 0 and t.cpu is not None and t.cpu > 0


def test_workers_exit_when_the_main_process_hangs_up():
    """A worker sees end-of-file when the main process's end of its pipe closes (as when the main
    process dies), rather than waiting forever: it must not hold a copy of that end itself."""
    vec = ProcessVectorEnv([lambda: _Boom(0)], workers=1)
    proc = vec._procs[0]
    vec._conns[0].close()
    proc.join(timeout=20)
    assert not proc.is_alive()
    vec.closed = True  # (its pipe is gone already)
