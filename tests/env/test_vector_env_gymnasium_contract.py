"""ProcessVectorEnv keeps gymnasium 1.4's vector-env contract.

The behaviours gymnasium's own vector tests pin (``tests/vector/`` in gymnasium's repository,
written again here in this project's words), run against ProcessVectorEnv, and side by side with
gymnasium's ``SyncVectorEnv`` wherever there is a reference: the same envs, seeds and actions must
give the same observations, rewards and flags and the same info, key for key, dtype for dtype,
mask for mask (``final_obs`` an object array with None where no episode ended).

Not taken over from gymnasium's suite, and why:

- Spaces other than a Box observation and a Discrete action (``test_vector_obs_action_spaces``
  over gymnasium's TESTING_SPACES, the custom-space tests): ProcessVectorEnv refuses them with a
  TypeError (its frames and actions go through shared memory with a fixed shape and dtype); the
  refusal is pinned below.
- ``AutoresetMode.DISABLED`` (``test_autoreset_disabled``, the DISABLED half of
  ``test_partial_reset``): refused (ValueError), pinned below; ``reset_mask`` itself is run in
  SAME_STEP and NEXT_STEP mode.
- ``shared_memory=False``, ``daemon=``, ``worker=``, ``max_concurrency=``: AsyncVectorEnv's own
  options, not ProcessVectorEnv's (its frames are always in shared memory).
- ``reset_async``/``reset_wait``, ``call_async``/``call_wait``: AsyncVectorEnv's own API, not
  VectorEnv's; ProcessVectorEnv's ``reset`` and ``call`` wait for their results.
- ``test_async_vector_subenv_error``: AsyncVectorEnv raises an env's exception as its own type;
  ProcessVectorEnv raises ``EnvWorkerError`` (a RuntimeError with the worker's traceback) from
  ``step``/``reset`` and closes, as tests/env/test_vector_env.py pins. ``call``/``get_attr``/
  ``set_attr`` do raise the env's own exception, pinned below.
- Action-space seeding (``test_sync_vector_env_seed``, ``test_sync_vector_determinism``): the
  batched action space is gymnasium's ``batch_space`` of env 0's, nothing of ProcessVectorEnv's.
- Rendering CartPole (``test_render_*``): needs pygame, not installed here; an env that renders
  an array stands in.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from functools import partial

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from gymnasium.error import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError  # noqa: E402
from gymnasium.spaces import Box, Dict, Discrete  # noqa: E402
from gymnasium.vector import AutoresetMode, SyncVectorEnv  # noqa: E402
from gymnasium.vector.utils import batch_differing_spaces  # noqa: E402

from dqnfast.vector_env import ProcessVectorEnv  # noqa: E402
from dqnfast.episode_stats import finished_episodes  # noqa: E402
from support.tiers import one_fast_case  # noqa: E402


class InfoEnv(gym.Env):
    """Env ``index``: episodes of ``3 + index`` steps, truncated when the last action is 2 and
    terminated otherwise. Observations come from ``np_random``, so seeds show in them. Its infos
    hold every kind of value gymnasium's ``_add_info`` batches: ints, floats, bools, arrays,
    strings (object arrays), a key only on odd steps, nested dicts, and RecordEpisodeStatistics'
    ``episode`` when an episode ends; every third reset reports an ``episode`` too (as dqnfast's
    EpisodicLifeEnv does when the no-op after a lost life ends the game inside the reset)."""

    observation_space = Box(0, 255, (4,), np.uint8)
    action_space = Discrete(3)
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, index=0, render_mode=None):
        self.index, self.render_mode = index, render_mode
        self.length = 3 + index
        self.resets = self.t = 0
        self.gravity = 9.8

    def _obs(self):
        return self.np_random.integers(0, 256, 4, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.resets += 1
        self.t = 0
        info = {"resets": self.resets, "index": self.index}
        if options:
            info["options"] = dict(options)
        if self.resets % 3 == 0:
            info["episode"] = {"r": -1.0 * self.resets, "l": self.resets, "t": 0.0}
        return self._obs(), info

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        info = {"t": self.t, "even": self.t % 2 == 0, "vec": np.full(2, self.t, np.float32), "name": f"env{self.index}",
                "nested": {"a": self.t, "b": {"c": float(self.t)}}}
        if self.t % 2:
            info["odd_only"] = 0.5 * self.t
        if end:
            info["episode"] = {"r": float(self.t), "l": self.t, "t": 0.0}
        return self._obs(), float(action) + 0.25 * self.index, end and action != 2, end and action == 2, info

    def render(self):
        return np.full((2, 3, 3), 10 * self.index + self.t, np.uint8)

    def scaled(self, x, k=1):
        return self.index * x * k


class OnlyEpisode(gym.Wrapper):
    """What ``infos="episode"`` promises to pass: the env's infos with only their ``episode`` key."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {k: v for k, v in info.items() if k == "episode"}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {k: v for k, v in info.items() if k == "episode"}


def info_envs(n, wrap=None):
    fns = [partial(InfoEnv, i) for i in range(n)]
    return fns if wrap is None else [lambda fn=fn: wrap(fn()) for fn in fns]


def assert_same(got, want, where="result"):
    """``got`` is ``want`` exactly: the same container types, keys, shapes, dtypes and values."""
    assert type(got) is type(want), f"{where}: a {type(got).__name__}, not a {type(want).__name__}"
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), f"{where}: keys {sorted(got)}, not {sorted(want)}"
        for key in want:
            assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, (tuple, list)):
        assert len(got) == len(want), f"{where}: {len(got)} items, not {len(want)}"
        for k, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{k}]")
    elif isinstance(want, np.ndarray):
        assert (got.shape, got.dtype) == (want.shape, want.dtype), \
            f"{where}: {got.dtype} {got.shape}, not {want.dtype} {want.shape}"
        if want.dtype == object:
            for k, (g, w) in enumerate(zip(got, want)):
                assert_same(g, w, f"{where}[{k}]")
        else:
            assert np.array_equal(got, want), f"{where}: {got}, not {want}"
    else:
        assert got == want, f"{where}: {got!r}, not {want!r}"


def objects(values):
    """An object array of ``values`` (None where no value), as gymnasium's ``final_obs``."""
    a = np.full(len(values), None, dtype=object)
    for k, v in enumerate(values):
        a[k] = v
    return a


@pytest.fixture()
def closing():
    """Closes every vector env the test registers, whatever happens."""
    envs = []
    yield lambda env: envs.append(env) or env
    for env in envs:
        env.close()


# -- the values and the info layout, step for step beside SyncVectorEnv -------------------------------------
@pytest.mark.parametrize("infos", ["all", "episode"])
@pytest.mark.parametrize("workers", one_fast_case(1, 2, 3))
@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_steps_and_resets_match_sync_vector_env(closing, mode, workers, infos):
    """Resets (int seed, a list of seeds, a reset_mask with options) and 40 random steps, in which
    episodes end by termination and by truncation and resets report episodes: everything equal to
    SyncVectorEnv's, with infos="episode" to SyncVectorEnv's over envs whose infos hold only
    ``episode``."""
    n = 3
    vec = closing(ProcessVectorEnv(info_envs(n), workers, autoreset_mode=mode, infos=infos))
    ref = closing(SyncVectorEnv(info_envs(n, None if infos == "all" else OnlyEpisode), autoreset_mode=mode))
    assert vec.metadata["autoreset_mode"] == ref.metadata["autoreset_mode"] == mode
    assert (vec.observation_space, vec.action_space) == (ref.observation_space, ref.action_space)
    assert_same(vec.reset(seed=3), ref.reset(seed=3), "reset(seed=3)")
    rng = np.random.default_rng(0)
    seen = {"terminated": 0, "truncated": 0, "top-level episodes": 0}
    if mode == AutoresetMode.SAME_STEP:
        seen["final_info episodes"] = 0
    for t in range(40):
        if t == 20:
            mask = np.array([True, False, True])
            got = vec.reset(seed=[5, None, 7], options={"reset_mask": mask, "level": 2})
            want = ref.reset(seed=[5, None, 7], options={"reset_mask": mask.copy(), "level": 2})
            assert_same(got, want, "reset with a mask")
        actions = rng.integers(3, size=n)
        got, want = vec.step(actions), ref.step(actions)
        assert_same(got, want, f"step {t}")
        info = want[4]
        seen["terminated"] += want[2].sum()
        seen["truncated"] += want[3].sum()
        seen["top-level episodes"] += info.get("_episode", np.zeros(n)).sum()
        if "final_info" in info:
            seen["final_info episodes"] += info["final_info"].get("_episode", np.zeros(n)).sum()
    assert min(seen.values()) >= 1, seen  # the run went through every case


def test_same_step_final_obs_is_an_object_array_with_none(closing):
    """gymnasium's own SAME_STEP example (its test_autoreset_within_step), its expected infos
    written out: ``final_obs`` holds the last observation of the envs whose episode ended and None
    for the others, ``final_info`` their step's info; no other key."""

    class Count(gym.Env):
        observation_space = Box(0, 100, (1,), np.int64)
        action_space = Discrete(5)
        max_count = 10

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.count = 0
            return np.array([0]), {}

        def step(self, action):
            self.count += 1
            return np.array([self.count]), action, self.count == self.max_count, False, {}

    vec = closing(ProcessVectorEnv([Count] * 3, workers=2))
    vec.set_attr("max_count", [2, 3, 3])
    obs, info = vec.reset()
    assert obs[:, 0].tolist() == [0, 0, 0] and info == {}
    obs, rewards, terminations, truncations, info = vec.step([1, 2, 3])
    assert obs[:, 0].tolist() == [1, 1, 1] and rewards.tolist() == [1, 2, 3] and info == {}
    obs, rewards, terminations, truncations, info = vec.step([1, 2, 3])
    assert obs[:, 0].tolist() == [0, 2, 2] and terminations.tolist() == [True, False, False]
    assert_same(info, {"final_obs": objects([np.array([2]), None, None]), "_final_obs": np.array([True, False, False]),
                       "final_info": {}, "_final_info": np.array([True, False, False])})
    obs, rewards, terminations, truncations, info = vec.step([1, 2, 3])
    assert obs[:, 0].tolist() == [1, 0, 0] and terminations.tolist() == [False, True, True]
    assert_same(info, {"final_obs": objects([None, np.array([3]), np.array([3])]),
                       "_final_obs": np.array([False, True, True]), "final_info": {},
                       "_final_info": np.array([False, True, True])})


@pytest.mark.parametrize("infos", ["all", "episode"])
def test_recv_gives_a_groups_info_as_sync_vector_env_of_that_group(closing, infos):
    """send/recv: each worker group's info is what a SyncVectorEnv of that group's envs gives."""
    wrap = None if infos == "all" else OnlyEpisode
    vec = closing(ProcessVectorEnv(info_envs(3, wrap=None), workers=2, infos=infos))  # groups [0, 2] and [1]
    fns = info_envs(3, wrap)
    refs = {(0, 2): closing(SyncVectorEnv([fns[0], fns[2]], autoreset_mode=AutoresetMode.SAME_STEP)),
            (1,): closing(SyncVectorEnv([fns[1]], autoreset_mode=AutoresetMode.SAME_STEP))}
    vec.reset(seed=1)
    for ids, ref in refs.items():
        ref.reset(seed=[1 + i for i in ids])
    rng = np.random.default_rng(2)
    ended = 0
    for t in range(15):
        actions = {ids: rng.integers(3, size=len(ids)) for ids in refs}
        for ids in refs:
            vec.send(actions[ids], list(ids))
        for _ in refs:
            obs, rewards, terminated, truncated, info = vec.recv()
            ids = tuple(info.pop("env_id").tolist())
            assert_same((obs, rewards, terminated, truncated, info), refs[ids].step(actions[ids]), f"{ids} step {t}")
            ended += terminated.sum() + truncated.sum()
    assert ended >= 3


def test_per_env_info_keys_reach_the_caller_with_atari_like_infos(closing):
    """The issue's example: keys like ``lives`` and ``frame_number`` come through (infos="all"), in
    final_info for an env whose episode ended, on top for the others."""

    class Lives(InfoEnv):
        def step(self, action):
            obs, reward, terminated, truncated, _ = super().step(action)
            return obs, reward, terminated, truncated, {"lives": 5 - self.t, "frame_number": 4 * self.t}

    vec = closing(ProcessVectorEnv([partial(Lives, i) for i in range(2)], workers=2))
    vec.reset(seed=0)
    _, _, _, _, info = vec.step([0, 0])
    assert_same(info, {"lives": np.array([4, 4]), "_lives": np.array([True, True]),
                       "frame_number": np.array([4, 4]), "_frame_number": np.array([True, True])})
    vec.step([0, 0])
    _, _, terminated, _, info = vec.step([0, 0])  # env 0's episode (3 steps) ends
    assert terminated.tolist() == [True, False]
    assert info["final_info"]["lives"].tolist() == [2, 0] and info["final_info"]["_lives"].tolist() == [True, False]
    assert info["lives"].tolist() == [0, 2] and info["_lives"].tolist() == [False, True]
    assert info["resets"].tolist() == [2, 0] and info["_resets"].tolist() == [True, False]  # env 0's reset info


def test_infos_episode_pickles_no_info(closing):
    """infos="episode" sends nothing of the infos but the episode statistics (through shared memory),
    so not even an info value that cannot be pickled stops a step; infos="all" must pickle it."""

    class Unpicklable(InfoEnv):
        def step(self, action):
            obs, reward, terminated, truncated, info = super().step(action)
            return obs, reward, terminated, truncated, {**info, "lock": threading.Lock()}

    vec = closing(ProcessVectorEnv([Unpicklable], infos="episode"))
    vec.reset(seed=0)
    for _ in range(3):
        *_, info = vec.step([0])
    assert info["final_info"]["_episode"].tolist() == [True] and info["final_info"]["episode"]["l"].tolist() == [3]
    vec = closing(ProcessVectorEnv([Unpicklable], infos="all"))
    vec.reset(seed=0)
    with pytest.raises(RuntimeError, match="(?s)worker 0.*lock"):
        vec.step([0])
    assert vec.closed


@pytest.mark.parametrize("infos", one_fast_case("all", "episode"))
@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_finished_episodes_reads_every_episode_where_gymnasium_puts_it(closing, mode, infos):
    """dqnfast's reader of episode statistics (the trainer's, the distributed actor's) finds every
    episode the envs report, in ``episode`` and in ``final_info``, from SyncVectorEnv and
    ProcessVectorEnv alike: counted against the single envs stepped by hand."""
    n = 2
    vec = closing(ProcessVectorEnv(info_envs(n), 2, autoreset_mode=mode, infos=infos))
    ref = closing(SyncVectorEnv(info_envs(n), autoreset_mode=mode))
    singles = [InfoEnv(i) for i in range(n)]
    vec.reset(seed=0)
    ref.reset(seed=0)
    for i, env in enumerate(singles):
        env.reset(seed=i)
    rng = np.random.default_rng(1)
    reported = []
    for t in range(30):
        actions = rng.integers(3, size=n)
        expected = []  # (env, return, length) each single env reports, in env order
        for i, env in enumerate(singles):
            if mode == AutoresetMode.NEXT_STEP and getattr(env, "ended", False):
                _, info = env.reset()
                env.ended = False
                infos_now = [info]
            else:
                _, _, terminated, truncated, info = env.step(int(actions[i]))
                infos_now = [info]
                if terminated or truncated:
                    if mode == AutoresetMode.SAME_STEP:
                        infos_now.append(env.reset()[1])
                    else:
                        env.ended = True
            expected += [(i, e["r"], e["l"]) for e in (x.get("episode") for x in infos_now) if e is not None]
        got_vec, got_ref = finished_episodes(vec.step(actions)[4]), finished_episodes(ref.step(actions)[4])
        assert got_vec == got_ref == expected, t
        reported += expected
    assert len(reported) >= 6 and any(r < 0 for _, r, _ in reported)  # some reported by a reset (r < 0)


# -- spaces, checked when the vector env is built ------------------------------------------------------------
class SpaceEnv(gym.Env):
    def __init__(self, observation_space, action_space=Discrete(2)):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def space_envs(spaces, actions=None):
    actions = actions or [Discrete(2)] * len(spaces)
    return [partial(SpaceEnv, o, a) for o, a in zip(spaces, actions)]


def no_workers_left():
    return not [p for p in mp.active_children() if p.name.startswith("dqnfast-env-worker")]


def test_observation_mode_same_refuses_differing_spaces():
    spaces = [Box(0, i, (2,)) for i in range(1, 4)]
    with pytest.raises(RuntimeError, match="the sub-environments observation spaces are not equivalent. .*If this is "
                                           "intentional, use `observation_mode='different'` instead."):
        ProcessVectorEnv(space_envs(spaces), workers=2)  # (env 1 on worker 1, env 2 on worker 0)
    assert no_workers_left()


@pytest.mark.parametrize("observation_mode", [
    "different", (Box(0, np.repeat(np.arange(1, 4), 5).reshape((3, 5)).astype(np.float32), (3, 5)), Box(0, 1, (5,)))])
def test_observation_mode_different_batches_each_envs_bounds(closing, observation_mode):
    spaces = [Box(0, i, (5,)) for i in range(1, 4)]
    vec = closing(ProcessVectorEnv(space_envs(spaces), workers=2, observation_mode=observation_mode))
    assert vec.observation_space == batch_differing_spaces(spaces)
    assert vec.single_observation_space == spaces[0] and vec.observation_mode == observation_mode
    obs, _ = vec.reset(seed=0)
    assert obs in vec.observation_space
    assert vec.step(vec.action_space.sample())[0] in vec.observation_space


@pytest.mark.slow
@pytest.mark.parametrize("observation_mode", ["different", (Box(0, 4, (3, 5)), Box(0, 4, (5,)))])
def test_observation_mode_different_refuses_other_shapes(observation_mode):
    with pytest.raises(RuntimeError, match="do not share a common shape and dtype"):
        ProcessVectorEnv(space_envs([Box(0, 1, (i + 1,)) for i in range(3)]), observation_mode=observation_mode)
    with pytest.raises(RuntimeError, match="do not share a common shape and dtype"):
        ProcessVectorEnv(space_envs([Box(0, 1, (5,)), Box(0, 1, (5,), np.float64)]), observation_mode="different")
    assert no_workers_left()


@pytest.mark.slow
@pytest.mark.parametrize("observation_mode", ["same", "different", (Box(0, 4, (3, 3)), Box(0, 4, (3,)))])
def test_mixed_observation_spaces_are_refused(observation_mode):
    spaces = [Box(0, 1, (3,)), Discrete(5), Dict({"a": Discrete(2), "b": Box(0, 1, (2,))})]
    with pytest.raises(RuntimeError, match="sub-environment 1"):
        ProcessVectorEnv(space_envs(spaces), workers=3, observation_mode=observation_mode)
    assert no_workers_left()


def test_differing_action_spaces_are_refused():
    with pytest.raises(RuntimeError, match=r"Sub-environment 1's action space Discrete\(3\)"):
        ProcessVectorEnv(space_envs([Box(0, 1, (2,))] * 2, [Discrete(2), Discrete(3)]), workers=1)
    with pytest.raises(RuntimeError, match="not equivalent"):  # gymnasium's own example: CartPole and FrozenLake
        ProcessVectorEnv([lambda: gym.make("CartPole-v1"), lambda: gym.make("FrozenLake-v1")])
    assert no_workers_left()


def test_bad_observation_modes():
    with pytest.raises(ValueError, match="Invalid `observation_mode`, expected: 'same' or 'different' or tuple of "
                                         "single and batch observation space, actual got invalid"):
        ProcessVectorEnv(space_envs([Box(0, 1, (5,))]), observation_mode="invalid")
    with pytest.raises(TypeError, match="Expected both elements of observation_mode to be Spaces"):
        ProcessVectorEnv(space_envs([Box(0, 1, (5,))]), observation_mode=(Box(0, 1, (1, 5)), "single"))


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(autoreset_mode=AutoresetMode.DISABLED), ValueError, "does not support autoreset_mode=.*DISABLED"),
    (dict(autoreset_mode="Later"), ValueError, "autoreset_mode must be"),
    (dict(infos="some"), ValueError, "infos must be 'all'.* or 'episode'"),
])
def test_unsupported_options_are_refused(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        ProcessVectorEnv(info_envs(1), **kw)


@pytest.mark.parametrize("spaces,msg", [
    ((Dict({"a": Box(0, 1, (2,))}), Discrete(2)), "needs a Box observation space .*got Dict"),
    ((Discrete(4), Discrete(2)), "needs a Box observation space .*got Discrete"),
    ((Box(0, 1, (2,)), Box(0, 1, (1,))), "needs a Discrete action space .*got Box"),
])
def test_unsupported_spaces_are_refused(spaces, msg):
    with pytest.raises(TypeError, match=msg):
        ProcessVectorEnv([partial(SpaceEnv, *spaces)])


# -- seeds, attributes, rendering ----------------------------------------------------------------------------
def seeded_info_env(i):
    env = InfoEnv(i)
    env.reset(seed=i)
    return env


def test_np_random_seed_is_each_envs_seed(closing):
    fns = [partial(seeded_info_env, i) for i in range(3)]
    vec, ref = closing(ProcessVectorEnv(fns, workers=2)), closing(SyncVectorEnv(fns))
    assert vec.np_random_seed == ref.np_random_seed == (0, 1, 2)
    vec.reset(seed=42)
    ref.reset(seed=42)
    assert vec.np_random_seed == ref.np_random_seed == (42, 43, 44)
    vec.reset(seed=None)  # the seeds stay
    ref.reset(seed=None)
    assert vec.np_random_seed == (42, 43, 44)
    assert [g.bit_generator.state for g in vec.np_random] == [g.bit_generator.state for g in ref.np_random]


def test_call_get_attr_set_attr_and_render(closing):
    fns = [partial(InfoEnv, i, render_mode="rgb_array") for i in range(3)]
    vec, ref = closing(ProcessVectorEnv(fns, workers=2)), closing(SyncVectorEnv(fns))
    assert vec.render_mode == ref.render_mode == "rgb_array"
    assert closing(ProcessVectorEnv(info_envs(1))).render_mode is None
    for env in (vec, ref):
        env.reset(seed=0)
        env.step([0, 1, 2])
    assert_same(vec.render(), ref.render(), "render()")
    assert vec.call("scaled", 2, k=3) == ref.call("scaled", 2, k=3) == (0, 6, 12)
    vec.set_attr("gravity", [9.81, 3.72, 8.87])
    assert vec.get_attr("gravity") == (9.81, 3.72, 8.87)
    vec.set_attr("gravity", 1.62)  # one value for every env
    assert vec.get_attr("gravity") == (1.62,) * 3
    with pytest.raises(ValueError, match="Values must be a list or tuple with length equal to the number of "
                                         r"environments. Got `2` values for 3 environments."):
        vec.set_attr("gravity", [1.0, 2.0])
    for env in (vec, ref):  # an env's own exception, as SyncVectorEnv raises it
        with pytest.raises(AttributeError, match="no_such_attribute"):
            env.call("no_such_attribute")
    for name in ("reset", "step", "close"):
        with pytest.raises(ValueError, match=rf"call\('{name}'\): use ProcessVectorEnv.{name}\(\) itself"):
            vec.call(name)
    assert vec.step([0, 0, 0])[0].shape == (3, 4)  # still usable
    vec.step_async([0, 0, 0])
    with pytest.raises(AlreadyPendingCallError):
        vec.call("scaled", 1)
    vec.step_wait()


# -- errors --------------------------------------------------------------------------------------------------
def test_calls_out_of_turn_raise_gymnasiums_errors(closing):
    vec = closing(ProcessVectorEnv(info_envs(2), workers=2))
    vec.reset()
    with pytest.raises(NoAsyncCallError, match="no step_async"):
        vec.step_wait()
    with pytest.raises(NoAsyncCallError, match="no send"):
        vec.recv()
    vec.step_async([0, 0])
    for call in (lambda: vec.step_async([0, 0]), vec.reset, lambda: vec.send([0], [0]), lambda: vec.set_attr("t", 0)):
        with pytest.raises(AlreadyPendingCallError, match="step_wait") as e:
            call()
        assert e.value.name == "step" and isinstance(e.value, RuntimeError)  # (RuntimeError, as before)
    vec.step_wait()
    vec.send([0], [0])
    with pytest.raises(AlreadyPendingCallError, match=r"worker\(s\) \[0\] are still stepping"):
        vec.send([0], [0])
    vec.recv()
    vec.close()
    for call in (vec.reset, lambda: vec.step([0, 0]), lambda: vec.step_async([0, 0]), vec.step_wait, vec.recv,
                 lambda: vec.send([0], [0]), lambda: vec.call("t"), lambda: vec.get_attr("t"),
                 lambda: vec.set_attr("t", 0), vec.render):
        with pytest.raises(ClosedEnvironmentError, match="closed") as e:
            call()
        assert isinstance(e.value, RuntimeError)


def test_reset_mask_is_checked_as_gymnasium_checks_it(closing):
    """gymnasium's test_partial_reset_failure, with its messages; a refused reset changes nothing."""
    vec = closing(ProcessVectorEnv(info_envs(3), workers=2))
    before, _ = vec.reset(seed=0)
    for mask, exc, msg in [
        (np.array([True]), ValueError, "`options['reset_mask']` must have shape `(3,)`, got (1,)"),
        (np.array([True, True, False, False]), ValueError, "`options['reset_mask']` must have shape `(3,)`, got (4,)"),
        (np.array([[True, True, True]]), ValueError, "`options['reset_mask']` must have shape `(3,)`, got (1, 3)"),
        (np.array([False, False, False]), ValueError, "`options['reset_mask']` must contain a boolean array with at "
                                                      "least one True value, got reset_mask=[False False False]"),
        (np.array([1, 1, 0]), TypeError, "`options['reset_mask']` must have `dtype=np.bool_`, got int64"),
        (np.array([1.0, 1.0, 0.0]), TypeError, "`options['reset_mask']` must have `dtype=np.bool_`, got float64"),
        ([True, True, False], TypeError, "`options['reset_mask']` must be a numpy array, got <class 'list'>"),
    ]:
        with pytest.raises(exc) as e:
            vec.reset(options={"reset_mask": mask})
        assert str(e.value) == msg
    with pytest.raises(TypeError, match="options must be a dict or None, got list"):
        vec.reset(options=[("reset_mask", np.ones(3, bool))])
    assert vec.np_random_seed == (0, 1, 2)  # no env was reset
    obs, _ = vec.reset(options={"reset_mask": np.array([False, True, False])})
    assert np.array_equal(obs[[0, 2]], before[[0, 2]]) and not np.array_equal(obs[1], before[1])


def test_actions_are_checked_as_gymnasium_checks_them(closing):
    """Too few or too many actions: ValueError; not a batch (a scalar) or not integers: TypeError;
    out of the action space: ValueError. A refused step sends nothing: the next one matches Sync."""
    vec = closing(ProcessVectorEnv(info_envs(3), workers=2))
    ref = closing(SyncVectorEnv(info_envs(3), autoreset_mode=AutoresetMode.SAME_STEP))
    vec.reset(seed=0)
    ref.reset(seed=0)
    for actions, exc, msg in [
        (np.array([0, 1]), ValueError, r"actions must be 3 integers \(shape \(3,\)\), got an array of shape \(2,\)"),
        (np.array([0, 1, 2, 0]), ValueError, r"shape \(4,\)"),
        (0, TypeError, "actions must be a sequence of 3 integers, one per env, got a single int"),
        (np.array([0.0, 1.0, 2.0]), TypeError, "actions must be integers, got float64"),
        (np.array([0, 3, 1]), ValueError, r"actions must be in \[0, 3\), got \[0, 3, 1\]"),
    ]:
        with pytest.raises(exc, match=msg):
            vec.step(actions)
    assert_same(vec.step([2, 1, 0]), ref.step([2, 1, 0]))


# -- step_wait(timeout=) -------------------------------------------------------------------------------------
class Gate(gym.Env):
    """Observes how many steps it has made; each step first waits for a byte on the test's pipe."""

    observation_space = Box(0, 255, (1,), np.uint8)
    action_space = Discrete(2)

    def __init__(self, go):
        self.go, self.steps = go, 0

    def reset(self, *, seed=None, options=None):
        self.steps = 0
        return np.zeros(1, np.uint8), {}

    def step(self, action):
        os.read(self.go, 1)
        self.steps += 1
        return np.array([self.steps], np.uint8), 0.0, False, False, {}

    def wait_at_gate(self):
        os.read(self.go, 1)
        return self.steps


@pytest.fixture()
def gated(closing):
    """Two Gate envs on two workers (forked: they inherit the pipe), and a function that lets n steps through."""
    go_r, go_w = os.pipe()
    vec = closing(ProcessVectorEnv([partial(Gate, go_r)] * 2, workers=2, context="fork"))
    yield vec, lambda steps: os.write(go_w, b"x" * steps)
    vec.close(terminate=True)
    os.close(go_r)
    os.close(go_w)


def test_step_wait_timeout_leaves_the_step_pending_then_returns_it(gated):
    vec, let_through = gated
    vec.reset()
    vec.step_async([0, 0])
    with pytest.raises(mp.TimeoutError, match="still pending"):
        vec.step_wait(timeout=0.01)  # the envs cannot finish: their gate is shut
    with pytest.raises(AlreadyPendingCallError, match=r"step_wait\(\) was interrupted or timed out"):
        vec.step_async([0, 0])
    with pytest.raises(mp.TimeoutError):
        vec.step_wait(timeout=0)
    let_through(2)
    assert vec.step_wait(timeout=60)[0][:, 0].tolist() == [1, 1]  # the pending step, once
    with pytest.raises(NoAsyncCallError):
        vec.step_wait()
    let_through(2)
    assert vec.step([0, 0])[0][:, 0].tolist() == [2, 2]
    assert vec.get_attr("steps") == (2, 2)


def test_step_wait_timeout_then_reset_drops_the_step(gated):
    vec, let_through = gated
    vec.reset()
    vec.step_async([0, 0])
    with pytest.raises(mp.TimeoutError):
        vec.step_wait(timeout=0.01)
    let_through(2)
    obs, _ = vec.reset()  # waits for the step, drops its results
    assert obs[:, 0].tolist() == [0, 0]
    let_through(2)
    assert vec.step([0, 0])[0][:, 0].tolist() == [1, 1]  # this step's results, not the dropped one's
    assert vec.get_attr("steps") == (1, 1)  # (a reply left behind would be taken for this call's)


def test_step_wait_timeout_must_be_seconds(gated):
    vec, let_through = gated
    vec.reset()
    let_through(2)
    vec.step_async([0, 0])
    with pytest.raises(ValueError, match="timeout must be >= 0 seconds, got -1"):
        vec.step_wait(timeout=-1)
    with pytest.raises(TypeError, match=r"timeout \(seconds, or None\) must be a number, got str"):
        vec.step_wait(timeout="1")
    assert vec.step_wait()[0][:, 0].tolist() == [1, 1]


class Interrupted(Exception):
    """Raised by the test's timer signal, as Ctrl-C raises KeyboardInterrupt."""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs a timer signal (setitimer)")
def test_a_call_cut_short_leaves_no_reply_behind(gated):
    """A call() interrupted while the envs are still in it (they wait at their shut gate, so the
    timer always fires first) leaves its replies owed: the next command reads and drops them
    instead of taking them for its own."""
    vec, let_through = gated
    vec.reset()

    def interrupt(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Interrupted):
            vec.call("wait_at_gate")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    let_through(4)  # the interrupted call's two waits, then one step of each env
    assert vec.step([0, 0])[0][:, 0].tolist() == [1, 1]
    assert vec.get_attr("steps") == (1, 1)
