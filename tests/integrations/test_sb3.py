"""DqnfastReplayBuffer against Stable-Baselines3's own ReplayBuffer, and inside SB3's DQN."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
import torch  # noqa: E402
from stable_baselines3 import DQN  # noqa: E402
from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage  # noqa: E402

from dqnfast.sb3 import DqnfastReplayBuffer  # noqa: E402
from support.frames import check_stack, decode  # noqa: E402
from support.pixel_env import PixelEnv  # noqa: E402

N_ENVS = 2


def make_venv(frame_shape, n_stack=4, transpose=False, channels_order=None):
    venv = DummyVecEnv([lambda i=i: PixelEnv(i, frame_shape, seed=100 + i) for i in range(N_ENVS)])
    venv = VecFrameStack(venv, n_stack=n_stack, channels_order=channels_order)
    return VecTransposeImage(venv) if transpose else venv


def rollout(venv, buffers, steps, seed=0):
    """Random actions; each step goes to every buffer exactly as SB3's OffPolicyAlgorithm._store_transition
    passes it (next_obs of a done env is its terminal_observation). Returns per step (dones, timeouts)."""
    rng = np.random.default_rng(seed)
    obs = venv.reset()
    ends = []
    for _ in range(steps):
        actions = rng.integers(0, 3, size=N_ENVS)
        new_obs, rewards, dones, infos = venv.step(actions)
        next_obs = new_obs.copy()
        for i, done in enumerate(dones):
            if done:
                next_obs[i] = infos[i]["terminal_observation"]
        for b in buffers:
            b.add(obs, next_obs, actions, rewards, dones, infos)
        ends.append((dones.copy(), np.array([info.get("TimeLimit.truncated", False) for info in infos])))
        obs = new_obs.copy()
    return ends


def assert_samples_equal(ours, theirs):
    for name in ("observations", "actions", "next_observations", "dones", "rewards"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert a.dtype == b.dtype and a.shape == b.shape, (name, a.dtype, b.dtype, a.shape, b.shape)
        assert torch.equal(a, b), name
    assert getattr(ours, "discounts", None) is None  # (a field only in newer SB3)


LAYOUTS = {  # frame shape, VecTransposeImage (as DQN's CnnPolicy adds), buffer kwargs
    "channel-last": ((6, 5, 1), False, {}),
    "channel-first": ((6, 5, 1), True, {}),
    "rgb-channel-last": ((8, 9, 3), False, {"n_stack": 4, "channels_order": "last"}),
}


@pytest.mark.parametrize("device_storage", [False, True])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_same_transitions_as_sb3s_own_replay_buffer(layout, device_storage):
    frame_shape, transpose, kwargs = LAYOUTS[layout]
    venv = make_venv(frame_shape, transpose=transpose, channels_order=kwargs.get("channels_order"))
    steps = 150
    theirs = SB3ReplayBuffer(steps * N_ENVS, venv.observation_space, venv.action_space, device="cpu", n_envs=N_ENVS,
                             optimize_memory_usage=False, handle_timeout_termination=True)
    # Ours is small enough to wrap (50 rows: a store of 216 frame slots): the oldest transitions are gone,
    # the rest must match.
    ours = DqnfastReplayBuffer(100, venv.observation_space, venv.action_space, device="cpu", n_envs=N_ENVS,
                               seed=1, device_storage=device_storage, **kwargs)

    ids = np.empty((steps, N_ENVS), np.int64)  # our transition id for SB3's (position, env)

    class Recorder:  # after ours.add, note which ids it gave the step
        t = 0

        def add(self, *args):
            ids[Recorder.t] = ours.last_indices
            Recorder.t += 1

    ends = rollout(venv, [theirs, ours, Recorder()], steps)
    dones = np.array([d for d, _ in ends])
    timeouts = np.array([t for _, t in ends]) & dones
    assert (dones & ~timeouts).sum() >= 3 and timeouts.sum() >= 3, "the rollout must hold terminations and truncations"

    valid = np.isin(ids, ours.store.valid_indices())
    assert 150 <= valid.sum() < steps * N_ENVS  # wrapped, and the last 50 rows and more are still there
    # SB3's _get_samples draws the env of each row from numpy's global generator: draw the same envs.
    np.random.seed(7)
    env_idx = np.random.randint(0, N_ENVS, size=300)
    pos = np.array([np.flatnonzero(valid[:, e])[k % valid[:, e].sum()] for k, e in enumerate(env_idx)])
    np.random.seed(7)
    want = theirs._get_samples(pos)
    got = ours._get_samples(ids[pos, env_idx])
    assert_samples_equal(got, want)

    # Truncations: done = 0 (bootstrap) and next_obs ends with the real final frame, not the reset frame.
    trunc = [k for k in range(len(pos)) if timeouts[pos[k], env_idx[k]]]
    assert trunc and not got.dones[trunc].any()
    for k in trunc:
        last = got.next_observations[k].numpy()
        newest = last[-1] if transpose else last[..., -frame_shape[-1]:]
        assert decode(newest)[2] > 0, "a truncated transition's next_obs must be the episode's final frame"

    # sample(): every row is one of SB3's transitions, found by its (self-identifying) observation.
    where = {theirs.observations[p, e].tobytes(): (p, e) for p, e in zip(*np.nonzero(valid))}
    s = ours.sample(64)
    for k in range(64):
        row = SB3Row(theirs, *where[s.observations[k].numpy().tobytes()])
        assert torch.equal(s.next_observations[k], torch.from_numpy(row.next_obs))
        assert (s.actions[k].item(), s.rewards[k].item(), s.dones[k].item()) == (row.action, row.reward, row.done)


class SB3Row:
    """Transition (position p, env e) read straight from SB3's arrays, with SB3's done for bootstrapping."""

    def __init__(self, buf, p, e):
        self.next_obs = buf.next_observations[p, e]
        self.action = int(buf.actions[p, e, 0])
        self.reward = float(buf.rewards[p, e])
        self.done = float(buf.dones[p, e] * (1 - buf.timeouts[p, e]))


def test_handle_timeout_termination_false_counts_truncations_as_done():
    venv = make_venv((6, 5, 1))
    ours = DqnfastReplayBuffer(400, venv.observation_space, venv.action_space, device="cpu", n_envs=N_ENVS,
                               handle_timeout_termination=False)
    ids = []

    class Recorder:
        def add(self, *args):
            ids.append(ours.last_indices)

    ends = rollout(venv, [ours, Recorder()], 80)
    done = np.array([d for d, _ in ends])
    got = ours._get_samples(np.concatenate(ids))
    np.testing.assert_array_equal(got.dones.numpy().ravel(), done.ravel().astype(np.float32))


def test_sb3_dqn_trains_with_it(one_torch_thread):
    venv = make_venv((36, 36, 1))  # NatureCNN's smallest input; CnnPolicy adds VecTransposeImage
    model = DQN("CnnPolicy", venv, replay_buffer_class=DqnfastReplayBuffer, buffer_size=400, learning_starts=50,
                batch_size=16, train_freq=4, gradient_steps=1, target_update_interval=50, device="cpu", seed=0)
    model.learn(total_timesteps=300)
    rb = model.replay_buffer
    assert isinstance(rb, DqnfastReplayBuffer) and rb.channels_first and rb.n_stack == 4
    assert model._n_updates > 0 and len(rb.store) > 100
    # A second learn() resets the envs without a done: the buffer must start new episodes itself.
    model.learn(total_timesteps=100, reset_num_timesteps=True)
    s = rb.sample(8)
    assert s.observations.shape == (8, 4, 36, 36) and s.observations.dtype == torch.uint8
    everything = rb._get_samples(rb.store.valid_indices())
    for obs, next_obs in zip(everything.observations.numpy(), everything.next_observations.numpy()):
        (env, ep, step), _ = check_stack(obs)  # one episode of one env, zero padding only in front
        assert check_stack(next_obs)[0] == (env, ep, step + 1)


def test_an_episode_end_is_taken_from_done_even_when_the_next_obs_looks_the_same():
    # Constant frames and n_stack=1: the reset observation equals the last one, so only `done` can
    # tell that a new episode began.
    from gymnasium import spaces
    obs_space = spaces.Box(0, 255, (2, 2, 1), np.uint8)
    ours = DqnfastReplayBuffer(50, obs_space, spaces.Discrete(2), device="cpu", n_envs=1)
    c = np.full((1, 2, 2, 1), 9, np.uint8)
    for done in (True, False, True):
        ours.add(c, c, np.array([1]), np.array([0.5]), np.array([done]), [{}])
    got = ours._get_samples(ours.store.valid_indices())
    assert len(ours.store) == 3 and ours.store.writes == 5  # two episodes: 2 starts + 3 steps
    np.testing.assert_array_equal(got.dones.numpy().ravel(), [1, 0, 1])


def test_observations_that_are_not_frame_stacks_are_rejected():
    venv = make_venv((6, 5, 1))
    ours = DqnfastReplayBuffer(100, venv.observation_space, venv.action_space, device="cpu", n_envs=N_ENVS)
    obs = venv.reset()
    new_obs, rewards, dones, infos = venv.step(np.zeros(N_ENVS, int))
    with pytest.raises(ValueError, match="shifted by one frame"):
        ours.add(obs, obs, np.zeros(N_ENVS), rewards, dones, infos)
    mid = new_obs.copy()
    new_obs2, rewards, dones, infos = venv.step(np.zeros(N_ENVS, int))
    with pytest.raises(ValueError, match="neither zero padding nor copies"):  # a fresh buffer attached mid-episode
        ours.add(new_obs, new_obs2, np.zeros(N_ENVS), rewards, dones, infos)
    assert ours.store.writes == 0, "nothing may be written before the checks pass"
    with pytest.raises(ValueError, match="shape"):
        ours.add(mid[:1], mid[:1], np.zeros(1), rewards[:1], dones[:1], infos[:1])


def test_bad_spaces_and_arguments():
    venv = make_venv((6, 5, 1))
    obs_space, act_space = venv.observation_space, venv.action_space
    from gymnasium import spaces
    with pytest.raises(TypeError, match="uint8 Box"):
        DqnfastReplayBuffer(100, spaces.Box(0, 1, (6, 5, 4), np.float32), act_space, n_envs=N_ENVS)
    with pytest.raises(TypeError, match="Discrete"):
        DqnfastReplayBuffer(100, obs_space, spaces.Box(-1, 1, (2,)), n_envs=N_ENVS)
    with pytest.raises(ValueError, match="pad must be"):
        DqnfastReplayBuffer(100, obs_space, act_space, n_envs=N_ENVS, pad="reset")
    with pytest.raises(ValueError, match="autoreset_mode"):
        DqnfastReplayBuffer(100, obs_space, act_space, n_envs=N_ENVS, autoreset_mode="disabled")
    with pytest.raises(ValueError, match="does not divide"):
        DqnfastReplayBuffer(100, obs_space, act_space, n_envs=N_ENVS, n_stack=3)
    with pytest.raises(ValueError, match="channels_order"):
        DqnfastReplayBuffer(100, obs_space, act_space, n_envs=N_ENVS, channels_order="middle")


def test_sample_applies_a_vecnormalize_env_like_sb3():
    venv = make_venv((6, 5, 1))
    ours = DqnfastReplayBuffer(200, venv.observation_space, venv.action_space, device="cpu", n_envs=N_ENVS, seed=3)
    rollout(venv, [ours], 40)

    class Normalizer:  # what SB3 calls on a VecNormalize: obs and reward, as numpy arrays
        def normalize_obs(self, obs):
            return obs.astype(np.float32) / 2

        def normalize_reward(self, reward):
            return reward * 10

    ids = ours.store.valid_indices()
    plain, scaled = ours._get_samples(ids), ours._get_samples(ids, env=Normalizer())
    assert torch.equal(scaled.observations, plain.observations.float() / 2)
    assert torch.equal(scaled.next_observations, plain.next_observations.float() / 2)
    assert torch.equal(scaled.rewards, plain.rewards * 10) and scaled.rewards.dtype == torch.float32
    assert torch.equal(scaled.dones, plain.dones) and torch.equal(scaled.actions, plain.actions)


# ---- gymnasium 1.x conventions, as CleanRL-style scripts use the buffer ----------------------------------
import gymnasium as gym  # noqa: E402
from gymnasium.wrappers import FrameStackObservation  # noqa: E402

AutoresetMode = getattr(gym.vector, "AutoresetMode", None)
needs_autoreset_modes = pytest.mark.skipif(AutoresetMode is None, reason="gymnasium < 1.1 has no autoreset modes")

from support.frames import make_frame  # noqa: E402

FRAME = (6, 5)
STACK = 4


def gym_envs(n_envs, padding_type, mode):
    """gymnasium's own SyncVectorEnv over its own FrameStackObservation: observations (n, 4, 6, 5)."""
    return gym.vector.SyncVectorEnv(
        [lambda i=i: FrameStackObservation(PixelEnv(i, FRAME, seed=100 + i), STACK, padding_type=padding_type)
         for i in range(n_envs)], autoreset_mode=mode)


def expected_stack(env, ep, step, pad):
    """The state whose newest frame is (env, ep, step), built from the env's frame code."""
    def frame(k):
        if k >= 0:
            return make_frame(env, ep, k, FRAME)
        return np.zeros(FRAME, np.uint8) if pad == "zero" else make_frame(env, ep, 0, FRAME)
    return np.stack([frame(k) for k in range(step - STACK + 1, step + 1)])


def cleanrl_rollout(envs, ours, steps, script="plain", theirs=None, seed=0, gymnasium_029_keys=False):
    """A CleanRL-style loop over a gymnasium 1.x vector env, with SB3's add(obs, next_obs, actions, rewards,
    terminations, infos). script: "plain" (an add every step; a truncated env's next_obs from
    infos["final_obs"] as CleanRL writes it), "truncated-kw" (plain, plus truncated=truncations), or "skip"
    (NEXT_STEP with one env: no add for the step after an episode end, as gymnasium's docs do).
    Returns the truth: (env, episode, step) of each frame the env produced by a step -> (action, reward,
    terminated, truncated), and per add the ids ours gave its rows (-1: not stored) for comparing with theirs."""
    n = envs.num_envs
    same_step = envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    truth, ids, after_end = {}, [], np.zeros(n, bool)
    for _ in range(steps):
        actions = rng.integers(0, 3, size=n)
        next_obs, rewards, terms, truncs, infos = envs.step(actions)
        real_next_obs = next_obs.copy()
        for i, trunc in enumerate(truncs):
            if trunc and same_step:
                real_next_obs[i] = infos["final_obs"][i]
        for i in np.flatnonzero(~after_end):  # steps the env took (not NEXT_STEP reset steps)
            final = infos["final_obs"][i] if same_step and (terms[i] or truncs[i]) else next_obs[i]
            truth[decode(final[-1])] = (int(actions[i]), float(rewards[i]), bool(terms[i]), bool(truncs[i]))
        if script != "skip" or not after_end.any():
            if gymnasium_029_keys:  # gymnasium 0.29 named them final_observation / _final_observation
                infos = {k.replace("final_obs", "final_observation"): v for k, v in infos.items()}
            ours.add(obs, real_next_obs, actions, rewards, terms, infos,
                     **({"truncated": truncs} if script == "truncated-kw" else {}))
            ids.append(ours.last_indices.copy())
            if theirs is not None:
                theirs.add(obs, real_next_obs, actions, rewards, terms, infos)
        after_end = (terms | truncs) & (not same_step)
        obs = next_obs
    return truth, np.array(ids)


def check_against_truth(rb, truth, pad, truncations_seen=True):
    """Every stored transition is exactly what the env produced, and every step the env took is stored.
    truncations_seen: the frame store marks exactly the truncated steps (False where the script hid them)."""
    ids = rb.store.valid_indices()
    s = rb._get_samples(ids)
    flags = (rb.store.buffer if rb._device_storage else rb.store).gather(ids)
    seen = set()
    for k in range(len(ids)):
        obs = s.observations[k].numpy()
        env, ep, step = decode(obs[-1])
        np.testing.assert_array_equal(obs, expected_stack(env, ep, step, pad))
        np.testing.assert_array_equal(s.next_observations[k].numpy(), expected_stack(env, ep, step + 1, pad))
        action, reward, term, _ = truth[(env, ep, step + 1)]
        assert (s.actions[k].item(), s.rewards[k].item(), s.dones[k].item()) == (action, reward, float(term))
        assert flags.terminated[k] == term
        assert flags.truncated[k] == (truncations_seen and truth[(env, ep, step + 1)][3])
        seen.add((env, ep, step + 1))
    assert seen == set(truth), "every step the env took (and nothing else) is a stored transition"
    drawn = rb.sample(64)  # (through the device mirror with device_storage=True)
    for k in range(64):
        env, ep, step = decode(drawn.observations[k, -1].cpu().numpy())
        np.testing.assert_array_equal(drawn.observations[k].cpu().numpy(), expected_stack(env, ep, step, pad))
        np.testing.assert_array_equal(drawn.next_observations[k].cpu().numpy(), expected_stack(env, ep, step + 1, pad))
        assert drawn.actions[k].item() == truth[(env, ep, step + 1)][0]
    return s


MODES = {"same_step": "SameStep", "next_step": "NextStep"}  # AutoresetMode's values


@needs_autoreset_modes
@pytest.mark.parametrize("padding_type", ["reset", "zero"])
@pytest.mark.parametrize("mode,script", [("same_step", "plain"), ("next_step", "plain"),
                                         ("next_step", "truncated-kw")])
def test_cleanrl_gymnasium_loop_gives_exact_transitions(padding_type, mode, script):
    """gymnasium's FrameStackObservation (either padding) in a SyncVectorEnv (either autoreset mode), fed
    as CleanRL does; nothing about the conventions is passed to the buffer: it detects them."""
    envs = gym_envs(N_ENVS, padding_type, MODES[mode])
    steps = 120
    ours = DqnfastReplayBuffer(steps * N_ENVS * 2, envs.single_observation_space, envs.single_action_space, "cpu",
                               n_envs=N_ENVS, optimize_memory_usage=True, handle_timeout_termination=False, seed=1)
    theirs = SB3ReplayBuffer(steps * N_ENVS, envs.single_observation_space, envs.single_action_space, "cpu",
                             n_envs=N_ENVS, optimize_memory_usage=False, handle_timeout_termination=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        truth, ids = cleanrl_rollout(envs, ours, steps, script, theirs=theirs)
    pad = "first" if padding_type == "reset" else "zero"
    assert ours.pad == pad and ours.autoreset_mode == mode and ours.store.pad == pad
    # Only a NEXT_STEP script that hides truncations (done = terminations, no truncated=) gets the warning.
    assert bool([w for w in caught if "NEXT_STEP reset step" in str(w.message)]) == (script == "plain" and
                                                                                      mode == "next_step")
    s = check_against_truth(ours, truth, pad, truncations_seen=not (script == "plain" and mode == "next_step"))
    ends = np.array([(t, tr) for _, _, t, tr in truth.values()])
    assert ends[:, 0].sum() >= 3 and ends[:, 1].sum() >= 3, "the rollout must hold terminations and truncations"
    assert (s.dones.numpy().ravel() == 0).sum() > 0

    # Against SB3's own buffer, fed the same calls: the same rows where ours stored one. A terminated row's
    # next_obs differs by design: CleanRL passes the reset observation there, ours keeps the final one.
    stored = ids >= 0
    pos, env = np.nonzero(stored)
    got = ours._get_samples(ids[pos, env])
    np.testing.assert_array_equal(got.observations.numpy(), theirs.observations[pos, env])
    np.testing.assert_array_equal(got.actions.numpy().ravel(), theirs.actions[pos, env].ravel())
    np.testing.assert_array_equal(got.rewards.numpy().ravel(), theirs.rewards[pos, env])
    np.testing.assert_array_equal(got.dones.numpy().ravel(), theirs.dones[pos, env])
    live = theirs.dones[pos, env] == 0
    np.testing.assert_array_equal(got.next_observations.numpy()[live], theirs.next_observations[pos, env][live])
    # What ours did not store: exactly NEXT_STEP's reset steps, which SB3 stores as transitions that cross
    # from one episode into the next.
    for p, e in zip(*np.nonzero(~stored)):
        assert mode == "next_step"
        assert decode(theirs.observations[p, e][-1])[1] != decode(theirs.next_observations[p, e][-1])[1]
        assert theirs.rewards[p, e] == 0
    if mode == "next_step":
        assert (~stored).sum() >= 6


@needs_autoreset_modes
def test_final_observation_from_infos_under_gymnasium_029_names():
    # A script that passes the reset observation as next_obs of every ended env: the real final one
    # comes from infos, here under gymnasium 0.29's key names.
    envs = gym_envs(N_ENVS, "zero", "SameStep")
    ours = DqnfastReplayBuffer(1000, envs.single_observation_space, envs.single_action_space, "cpu", n_envs=N_ENVS,
                               handle_timeout_termination=False)
    truth, _ = cleanrl_rollout(envs, ours, 100, gymnasium_029_keys=True)
    assert ours.autoreset_mode == "same_step"
    check_against_truth(ours, truth, "zero")


@needs_autoreset_modes
def test_next_step_script_that_skips_the_reset_step():
    envs = gym_envs(1, "reset", "NextStep")
    ours = DqnfastReplayBuffer(1000, envs.single_observation_space, envs.single_action_space, "cpu", n_envs=1,
                               device_storage=True)
    truth, ids = cleanrl_rollout(envs, ours, 150, "skip")
    assert (ids >= 0).all() and ours.autoreset_mode == "next_step"
    # done = terminations hides truncations; the next add's reset observation starts a new episode anyway.
    check_against_truth(ours, truth, "first", truncations_seen=False)


def test_sb3_vec_frame_stack_detects_zero_padding_and_same_step():
    venv = make_venv((6, 5, 1))
    ours = DqnfastReplayBuffer(400, venv.observation_space, venv.action_space, device="cpu", n_envs=N_ENVS)
    assert ours.pad is None
    rollout(venv, [ours], 30)
    assert ours.pad == "zero" and ours.autoreset_mode == "same_step"


@needs_autoreset_modes
def test_explicit_pad_that_does_not_fit_is_an_error():
    envs = gym_envs(N_ENVS, "reset", "SameStep")
    ours = DqnfastReplayBuffer(200, envs.single_observation_space, envs.single_action_space, "cpu", n_envs=N_ENVS,
                               pad="zero")
    with pytest.raises(ValueError, match="not zero padding"):
        cleanrl_rollout(envs, ours, 3)
    assert ours.store.writes == 0


def test_padding_that_fits_both_kinds_is_an_error_unless_given():
    space = gym.spaces.Box(0, 255, (2, 3, 3), np.uint8)  # 2 stacked frames of 3x3, channel-first
    zeros = np.zeros((1, 2, 3, 3), np.uint8)
    later = zeros.copy()
    later[0, 1] = 7  # obs shifted by one frame, then a new frame
    rb = DqnfastReplayBuffer(50, space, gym.spaces.Discrete(2), "cpu", n_envs=1)
    with pytest.raises(ValueError, match="pass pad='zero' or pad='first'"):
        rb.add(zeros, later, np.array([0]), np.array([1.0]), np.array([False]), [{}])
    assert rb.store.writes == 0
    two = DqnfastReplayBuffer(50, space, gym.spaces.Discrete(2), "cpu", n_envs=2)
    zero_padded, first_padded = np.zeros((2, 3, 3), np.uint8), np.full((2, 3, 3), 4, np.uint8)
    zero_padded[1] = 3
    both = np.stack([zero_padded, first_padded])
    with pytest.raises(ValueError, match="must pad new episodes the same way"):
        two.add(both, both, np.zeros(2), np.zeros(2), np.zeros(2, bool), [{}, {}])
    for pad in ("zero", "first"):
        rb = DqnfastReplayBuffer(50, space, gym.spaces.Discrete(2), "cpu", n_envs=1, pad=pad)
        rb.add(zeros, later, np.array([0]), np.array([1.0]), np.array([False]), [{}])
        assert len(rb.store) == 1 and rb.store.pad == pad


def test_ambiguous_next_step_reset_step_is_an_error():
    # Constant frames: after an episode end, obs is both the final and a reset observation, and next_obs
    # fits both a reset step and a first step. The buffer cannot tell, so it says so.
    space = gym.spaces.Box(0, 255, (2, 3, 3), np.uint8)
    c = np.full((1, 2, 3, 3), 5, np.uint8)
    rb = DqnfastReplayBuffer(50, space, gym.spaces.Discrete(2), "cpu", n_envs=1, autoreset_mode="next_step")
    rb.add(c, c, np.array([0]), np.array([1.0]), np.array([True]), {})
    assert rb.pad == "first"
    with pytest.raises(ValueError, match="cannot tell whether this is gymnasium's NEXT_STEP reset step"):
        rb.add(c, c, np.array([0]), np.array([0.0]), np.array([False]), {})


@needs_autoreset_modes
def test_conventions_that_contradict_are_errors():
    envs = gym_envs(N_ENVS, "reset", "SameStep")
    ours = DqnfastReplayBuffer(400, envs.single_observation_space, envs.single_action_space, "cpu", n_envs=N_ENVS,
                               autoreset_mode=AutoresetMode.NEXT_STEP)
    with pytest.raises(ValueError, match="looks like same_step"):
        cleanrl_rollout(envs, ours, 60)
    ours = DqnfastReplayBuffer(400, envs.single_observation_space, envs.single_action_space, "cpu", n_envs=N_ENVS)
    obs, _ = envs.reset(seed=0)
    nxt, r, term, trunc, infos = envs.step(np.zeros(N_ENVS, int))
    ours.add(obs, nxt, np.zeros(N_ENVS), r, term, infos)
    with pytest.raises(ValueError, match="one buffer takes one convention"):
        ours.add(nxt, nxt, np.zeros(N_ENVS), r, term, [{}] * N_ENVS)
    with pytest.raises(TypeError, match="list of dicts"):
        ours.add(nxt, nxt, np.zeros(N_ENVS), r, term, "infos")
    with pytest.raises(ValueError, match="one dict per env"):
        ours.add(nxt, nxt, np.zeros(N_ENVS), r, term, [{}] * (N_ENVS + 1))


def test_sb3_dqn_with_optimize_memory_usage_true(one_torch_thread):
    # SB3 passes optimize_memory_usage on to the buffer and, before a second learn(), marks the last
    # stored step done through the buffer's `dones`: both must work, and every stored state stay exact.
    venv = make_venv((36, 36, 1))
    model = DQN("CnnPolicy", venv, replay_buffer_class=DqnfastReplayBuffer, buffer_size=400, learning_starts=50,
                batch_size=16, train_freq=4, target_update_interval=50, device="cpu", seed=0,
                optimize_memory_usage=True)
    model.learn(total_timesteps=150)
    rb = model.replay_buffer
    assert rb.optimize_memory_usage and rb.handle_timeout_termination  # (SB3's own buffer refuses this pair)
    with pytest.warns(UserWarning, match="last trajectory"):
        model.learn(total_timesteps=100, reset_num_timesteps=True)
    everything = rb._get_samples(rb.store.valid_indices())
    for obs, next_obs in zip(everything.observations.numpy(), everything.next_observations.numpy()):
        (env, ep, step), _ = check_stack(obs)
        assert check_stack(next_obs)[0] == (env, ep, step + 1)
