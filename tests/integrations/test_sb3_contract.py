"""DqnfastReplayBuffer keeps SB3's ReplayBuffer contract: counters (buffer_size, pos, full, size()),
pickling (save_replay_buffer / load_replay_buffer / copy.deepcopy), SB3's n-step keyword and
VecNormalize. The second half ports the replay-buffer parts of SB3's own tests (in SB3's repository:
test_buffers.py, test_save_load.py and test_n_step_replay.py; not in SB3's wheel, so rewritten here) to uint8
frame-stacked image observations, each run against SB3's buffer and this one."""
from __future__ import annotations

import copy
import gc
import pickle

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
import torch  # noqa: E402
from stable_baselines3 import DQN  # noqa: E402
from stable_baselines3.common.buffers import NStepReplayBuffer  # noqa: E402
from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer  # noqa: E402
from stable_baselines3.common.utils import get_device  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecNormalize, VecTransposeImage  # noqa: E402

from dqnfast import ReplayBuffer  # noqa: E402
from dqnfast.sb3 import DqnfastReplayBuffer, save_replay_buffer  # noqa: E402
from dqnfast.torch_replay import DeviceReplayBuffer  # noqa: E402
from support.pixel_env import PixelEnv  # noqa: E402

FRAME = (6, 5, 1)


def make_venv(n_envs=2, max_steps=12, p_terminate=0.08):
    """VecFrameStack over the self-identifying pixel env: uint8 observations (6, 5, 4), channel-last."""
    venv = DummyVecEnv([lambda i=i: PixelEnv(i, FRAME, max_steps=max_steps, p_terminate=p_terminate, seed=100 + i)
                        for i in range(n_envs)])
    return VecFrameStack(venv, n_stack=4)


class Stepper:
    """Random actions on a venv that carries on across run() calls; every step goes to each buffer as
    SB3's OffPolicyAlgorithm._store_transition passes it (next_obs of a done env: its terminal_observation)."""

    def __init__(self, venv, seed=0):
        self.venv, self.rng = venv, np.random.default_rng(seed)
        self.obs = venv.reset()

    def run(self, buffers, steps, after_add=None):
        for _ in range(steps):
            actions = self.rng.integers(0, 3, size=self.venv.num_envs)
            new_obs, rewards, dones, infos = self.venv.step(actions)
            next_obs = new_obs.copy()
            for i in np.flatnonzero(dones):
                next_obs[i] = infos[i]["terminal_observation"]
            for b in buffers:
                b.add(self.obs, next_obs, actions, rewards, dones, infos)
            if after_add is not None:
                after_add()
            self.obs = new_obs


def ours_like(theirs_or_venv, buffer_size, n_envs=2, **kw):
    return DqnfastReplayBuffer(buffer_size, theirs_or_venv.observation_space, theirs_or_venv.action_space,
                               device="cpu", n_envs=n_envs, **kw)


def assert_samples_equal(a, b):
    for name in ("observations", "actions", "next_observations", "dones", "rewards"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert torch.equal(x.cpu(), y.cpu()), name


def tracked(rb):
    """Everything the adapter tracks besides the store itself (and the spaces, which pickle as themselves)."""
    skip = {"store", "dones", "_state", "observation_space", "action_space"}
    return {k: v for k, v in vars(rb).items() if k not in skip}


def assert_same_buffer(a, b):
    ta, tb = tracked(a), tracked(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        if isinstance(ta[k], np.ndarray):
            assert ta[k].dtype == tb[k].dtype and np.array_equal(ta[k], tb[k]), k
        else:
            assert ta[k] == tb[k], k
    assert type(a.store) is type(b.store)
    ha, hb = (a.store.buffer, b.store.buffer) if a._device_storage else (a.store, b.store)
    assert (ha.capacity, ha.seed, ha.writes, len(ha)) == (hb.capacity, hb.seed, hb.writes, len(hb))
    np.testing.assert_array_equal(ha.valid_indices(), hb.valid_indices())
    for e in range(a.n_envs):
        assert ha.episode_active(e) == hb.episode_active(e)


# ---- counters and the window -----------------------------------------------------------------------
@pytest.mark.parametrize("device_storage", [False, True])
@pytest.mark.parametrize("episodes", ["one-step", "long"])
@pytest.mark.parametrize("n_envs", [1, 2])
def test_counters_and_sampled_rows_are_sb3s(n_envs, episodes, device_storage):
    # One-step episodes (every step truncated) are the worst case for the store: an episode start
    # before every step. Long ones leave the store holding rows older than SB3's window.
    venv = make_venv(n_envs, max_steps=1 if episodes == "one-step" else 12)
    theirs = SB3ReplayBuffer(40, venv.observation_space, venv.action_space, device="cpu", n_envs=n_envs)
    ours = ours_like(venv, 40, n_envs, seed=3, device_storage=device_storage)
    assert ours.buffer_size == theirs.buffer_size == 40 // n_envs
    assert (ours.pos, ours.full, ours.size()) == (0, False, 0)
    ids = []

    def same_counters():
        assert (ours.pos, ours.full, ours.size()) == (theirs.pos, theirs.full, theirs.size())
        ids.append(ours.last_indices.copy())

    Stepper(venv).run([theirs, ours], 3 * theirs.buffer_size + 7, after_add=same_counters)  # wraps 3 times
    assert theirs.full and theirs.pos == 7

    # The last size() rows are all still stored, in SB3's row order from its oldest row (pos).
    window = np.array(ids[-ours.size():])
    assert np.isin(window, ours.store.valid_indices()).all(), "the store lost rows of the last buffer_size"
    rows = (theirs.pos + np.arange(theirs.buffer_size)) % theirs.buffer_size
    got = ours._get_samples(window.reshape(-1))
    for name, want in (("observations", theirs.observations[rows]), ("next_observations",
                                                                       theirs.next_observations[rows])):
        np.testing.assert_array_equal(getattr(got, name).numpy(), want.reshape(-1, *ours.obs_shape), err_msg=name)
    if episodes == "long":  # (so that sampling only from the window is tested)
        assert len(ours.store) > ours.size() * n_envs, "the store must hold rows older than the window"

    # sample() draws only SB3's current rows (each frame encodes env, episode and step).
    held = {o.tobytes() + n.tobytes() for o, n in zip(theirs.observations.reshape(-1, *ours.obs_shape),
                                                        theirs.next_observations.reshape(-1, *ours.obs_shape))}
    s = ours.sample(300)
    drawn = {o.tobytes() + n.tobytes() for o, n in zip(s.observations.cpu().numpy(), s.next_observations.cpu().numpy())}
    assert drawn <= held, f"{len(drawn - held)} drawn transitions are older than SB3's last buffer_size rows"
    assert len(drawn) > len(held) // 2  # (draws spread over the window)

    ours.reset()
    assert (ours.pos, ours.full, ours.size(), len(ours.store)) == (0, False, 0, 0)


def test_buffer_size_smaller_than_n_envs_is_one_row():
    venv = make_venv(2)
    theirs = SB3ReplayBuffer(1, venv.observation_space, venv.action_space, device="cpu", n_envs=2)
    ours = ours_like(venv, 1, seed=0)
    assert ours.buffer_size == theirs.buffer_size == 1
    Stepper(venv).run([theirs, ours], 5)
    assert (ours.pos, ours.full, ours.size()) == (theirs.pos, theirs.full, theirs.size()) == (0, True, 1)
    assert ours.sample(20).observations.shape == (20, *ours.obs_shape)


def test_bad_sizes_are_clear_errors():
    venv = make_venv(2)
    for bad, err in ((0, ValueError), (-3, ValueError), (2.5, TypeError)):
        with pytest.raises(err, match="buffer_size"):
            ours_like(venv, bad)
    with pytest.raises(ValueError, match="n_envs"):
        ours_like(venv, 10, n_envs=0)


# ---- pickling ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("device_storage", [False, True])
def test_pickle_and_deepcopy_continue_exactly(device_storage):
    venv = make_venv(2)
    stepper = Stepper(venv)
    ours = ours_like(venv, 60, seed=5, device_storage=device_storage)
    stepper.run([ours], 70)  # wrapped: 30 rows
    ours.sample(7)  # moves the store's random stream on: its position must survive too
    copies = [pickle.loads(pickle.dumps(ours, protocol=pickle.HIGHEST_PROTOCOL)), copy.deepcopy(ours)]
    for c in copies:
        assert type(c) is DqnfastReplayBuffer and c.store is not ours.store
        assert_same_buffer(ours, c)
        if device_storage:
            assert isinstance(c.store, DeviceReplayBuffer) and c.store.device == ours.store.device
    for _ in range(2):
        want = ours.sample(32)
        for c in copies:
            assert_samples_equal(c.sample(32), want)
    # The same steps continue the same open episodes in each (add checks obs against the stack it holds).
    stepper.run([ours, *copies], 25)
    for c in copies:
        assert_same_buffer(ours, c)
    want = ours.sample(32)
    for c in copies:
        assert_samples_equal(c.sample(32), want)


def tiny_dqn(venv, buffer_size=120, **buffer_kwargs):
    # MlpPolicy on (4, 6, 5) images: no CNN to train, so a few hundred steps stay cheap.
    return DQN("MlpPolicy", venv, replay_buffer_class=DqnfastReplayBuffer, replay_buffer_kwargs=buffer_kwargs,
               buffer_size=buffer_size, learning_starts=40, batch_size=8, train_freq=4, target_update_interval=40,
               policy_kwargs=dict(net_arch=[16]), device="cpu", seed=0)


@pytest.mark.parametrize("device_storage", [False, True])
def test_save_and_load_replay_buffer_into_a_fresh_dqn(tmp_path, device_storage, one_torch_thread):
    model = tiny_dqn(make_venv(2), device_storage=device_storage)
    model.learn(total_timesteps=160)  # 80 rows: wrapped (60)
    original = model.replay_buffer
    model.save_replay_buffer(tmp_path / "rb.pkl")
    fresh = tiny_dqn(make_venv(2), device_storage=device_storage)
    fresh.load_replay_buffer(tmp_path / "rb.pkl")
    loaded = fresh.replay_buffer
    assert loaded is not original and loaded.device == fresh.device
    assert_same_buffer(original, loaded)
    for _ in range(2):
        assert_samples_equal(loaded.sample(16), original.sample(16))
    # Both go on with the same steps: new episodes, since these envs start afresh (channel-first, as
    # DQN wraps its env in VecTransposeImage).
    Stepper(VecTransposeImage(make_venv(2)), seed=9).run([original, loaded], 30)
    assert_same_buffer(original, loaded)
    assert_samples_equal(loaded.sample(16), original.sample(16))
    # And training continues from the loaded buffer.
    updates = fresh._n_updates
    fresh.learn(total_timesteps=60, reset_num_timesteps=False)
    assert fresh._n_updates > updates and fresh.replay_buffer is loaded


# SB3's save_to_pkl closes its file only after a successful dump: the failed save below leaves it to
# the garbage collector, which reports it as an unraisable ResourceWarning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_failed_save_leaves_no_broken_file(tmp_path, monkeypatch):
    # 20,000 rows: the state pickled ahead of the snapshot (_row_first alone is 160 KB) exceeds pickle's
    # 64 KiB frames, so a snapshot taken only once pickle reaches it would leave those bytes in the file.
    model = tiny_dqn(make_venv(2), buffer_size=40_000)
    model.learn(total_timesteps=30)
    good = tmp_path / "good.pkl"
    assert save_replay_buffer(model, good) == str(good)
    before = good.read_bytes()

    def disk_full(self, path, durable=True):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ReplayBuffer, "save", disk_full)
    # SB3's save_replay_buffer: the snapshot fails inside __getstate__, before pickle writes a byte, but
    # SB3's save_to_pkl has already created the file, so an empty one remains (SB3's behaviour).
    with pytest.raises(OSError, match="disk full"):
        model.save_replay_buffer(tmp_path / "sb3.pkl")
    gc.collect()  # (closes SB3's file, flushing anything it buffered)
    assert (tmp_path / "sb3.pkl").stat().st_size == 0
    # dqnfast.sb3.save_replay_buffer: nothing at a new path; an existing file is left as it was.
    with pytest.raises(OSError, match="disk full"):
        save_replay_buffer(model, tmp_path / "new.pkl")
    with pytest.raises(OSError, match="disk full"):
        save_replay_buffer(model.replay_buffer, good)
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.pkl", "sb3.pkl"], "no file or temporary left"
    monkeypatch.undo()

    fresh = tiny_dqn(make_venv(2))
    fresh.load_replay_buffer(good)
    assert_same_buffer(model.replay_buffer, fresh.replay_buffer)
    # Like SB3's save_to_pkl, a path without a suffix gets ".pkl".
    assert save_replay_buffer(model, tmp_path / "nosuffix") == str(tmp_path / "nosuffix.pkl")
    with pytest.raises(TypeError, match="path must be"):
        save_replay_buffer(model, 3)
    with pytest.raises(TypeError, match="off-policy model or replay buffer"):
        save_replay_buffer(object(), tmp_path / "x.pkl")


def test_a_damaged_pickle_is_refused_clearly():
    venv = make_venv(2)
    ours = ours_like(venv, 40, seed=1)
    Stepper(venv).run([ours], 10)
    state = ours.__getstate__()
    snapshot = bytearray(state["_store_snapshot"])
    snapshot[-100] ^= 0xFF  # one flipped byte in the frames: the native checksum catches it
    state["_store_snapshot"] = bytes(snapshot)
    with pytest.raises(ValueError, match="checksum"):
        DqnfastReplayBuffer.__new__(DqnfastReplayBuffer).__setstate__(state)


# ---- SB3's n-step keyword ------------------------------------------------------------------------------
def test_n_steps_above_one_is_refused_with_what_to_do():
    venv = make_venv(2)
    with pytest.raises(ValueError, match=r"n_steps=3 .*NStepReplayBuffer.*dqnfast.ReplayBuffer\(n_step"):
        ours_like(venv, 40, n_steps=3, gamma=0.9)
    # As SB3 passes it: replay_buffer_kwargs (DQN's own n_steps= is ignored, with SB3's warning, when a
    # replay_buffer_class is given).
    with pytest.raises(ValueError, match="n_steps=3"):
        tiny_dqn(venv, n_steps=3, gamma=0.9)
    with pytest.raises(TypeError, match="n_steps must be an int"):
        ours_like(venv, 40, n_steps=2.0)
    with pytest.raises(ValueError, match="n_steps must be positive"):
        ours_like(venv, 40, n_steps=0)
    with pytest.raises(TypeError, match="gamma must be a number"):
        ours_like(venv, 40, n_steps=1, gamma="0.9")
    ours_like(venv, 40, n_steps=1, gamma=0.9)  # one step: the plain buffer


# ---- VecNormalize ------------------------------------------------------------------------------------
def test_vecnormalize_norm_obs_is_named_in_the_errors():
    base = make_venv(2)
    venv = VecNormalize(base, norm_obs=True, norm_reward=False)
    # VecNormalize(norm_obs=True) normalizes images too: the space it reports is a float32 Box.
    with pytest.raises(TypeError, match=r"VecNormalize\(norm_obs=False\)"):
        DqnfastReplayBuffer(40, venv.observation_space, venv.action_space, device="cpu", n_envs=2)
    # A loop that stores the original (uint8) observations but passes VecNormalize's infos: their
    # terminal_observation is normalized (float).
    ours = ours_like(base, 400)
    rng = np.random.default_rng(0)
    venv.reset()
    obs = venv.get_original_obs()
    with pytest.raises(ValueError, match=r"terminal_observation.*float.*VecNormalize\(norm_obs=False\)"):
        for _ in range(200):
            actions = rng.integers(0, 3, size=2)
            _, rewards, dones, infos = venv.step(actions)
            next_obs = venv.get_original_obs()
            ours.add(obs, next_obs, actions, rewards, dones, infos)
            obs = next_obs
    assert ours.size() > 0, "the error must come at an episode end, after ordinary steps were stored"


# ==== SB3's own buffer tests, ported to uint8 frame-stacked images ======================================
BUFFERS = ["sb3", "dqnfast"]


def make_buffer(kind, venv, buffer_size, **kw):
    if kind == "sb3":
        return SB3ReplayBuffer(buffer_size, venv.observation_space, venv.action_space, n_envs=venv.num_envs, **kw)
    return DqnfastReplayBuffer(buffer_size, venv.observation_space, venv.action_space, n_envs=venv.num_envs,
                               seed=0, **kw)


# SB3's tests/test_buffers.py::test_replay_buffer_normalization. Only rewards: with norm_obs=True VecNormalize
# turns image observations into floats, which this buffer refuses (test above).
@pytest.mark.parametrize("kind", BUFFERS)
def test_replay_buffer_normalization(kind):
    venv = VecNormalize(make_venv(1), norm_obs=False, norm_reward=True)
    buffer = make_buffer(kind, venv, 100, device="cpu")
    rng = np.random.default_rng(0)
    venv.reset()
    obs = venv.get_original_obs()
    for _ in range(100):
        action = rng.integers(0, 3, size=1)
        _, _, done, info = venv.step(action)
        next_obs = venv.get_original_obs()
        for i in np.flatnonzero(done):
            next_obs[i] = info[i]["terminal_observation"]
        buffer.add(obs, next_obs, action, venv.get_original_reward(), done, info)
        obs = venv.get_original_obs()
    sample = buffer.sample(50, venv)
    assert sample.observations.dtype == torch.uint8  # (norm_obs=False: returned as stored)
    assert np.allclose(sample.rewards.mean(0), np.zeros(1), atol=1)


# SB3's tests/test_buffers.py::test_device_buffer
@pytest.mark.parametrize("device", ["cpu", "cuda", "auto"])
@pytest.mark.parametrize("kind", BUFFERS + ["dqnfast-device-storage"])
def test_device_buffer(kind, device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    venv = make_venv(1)
    kw = {"device_storage": True} if kind == "dqnfast-device-storage" else {}
    buffer = make_buffer(kind.split("-")[0], venv, 100, device=device, **kw)
    Stepper(venv).run([buffer], 100)
    want = get_device(device).type
    for value in buffer.sample(50):
        if value is not None:  # (discounts: None outside n-step buffers)
            assert value.device.type == want


# SB3's tests/test_save_load.py::test_save_load_replay_buffer (DQN): save, drop, load on the model's device.
@pytest.mark.parametrize("kind", BUFFERS)
def test_save_load_replay_buffer(tmp_path, kind, one_torch_thread):
    path = tmp_path / "logs" / "replay_buffer.pkl"
    path.parent.mkdir(parents=True)
    model = DQN("MlpPolicy", make_venv(1), buffer_size=100, policy_kwargs=dict(net_arch=[16]), learning_starts=60,
                device="cpu", seed=0, **({} if kind == "sb3" else {"replay_buffer_class": DqnfastReplayBuffer}))
    model.learn(150)
    old = copy.deepcopy(model.replay_buffer)
    model.save_replay_buffer(path)
    model.replay_buffer = None
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]  # (SB3 loops over both)
    for device in devices:
        model.device = torch.device(device)
        model.load_replay_buffer(path)
        assert model.replay_buffer.device.type == model.device.type
    new = model.replay_buffer
    assert (new.pos, new.full, new.size(), new.buffer_size) == (old.pos, old.full, old.size(), old.buffer_size)
    if kind == "sb3":
        for name in ("observations", "actions", "next_observations", "rewards", "dones", "timeouts"):
            assert np.array_equal(getattr(old, name), getattr(new, name)), name
        infos = [[{"TimeLimit.truncated": t}] for t in old.timeouts]
        new.extend(old.observations, old.observations, old.actions, old.rewards, old.dones, infos)
    else:
        assert_same_buffer(old, new)
        assert_samples_equal(old.sample(8), new.sample(8))
        # SB3's test extends with observations as next_observations: not a frame-stack transition,
        # which this buffer refuses before writing anything.
        infos = [[{}] for _ in range(3)]
        obs = np.zeros((3, 1, *new.obs_shape), np.uint8)  # (rows, envs, 4, 6, 5): reset observations
        obs[:, :, -1] = 7
        writes = new.store.writes
        with pytest.raises(ValueError, match="shifted by one frame"):
            new.extend(obs, obs, np.zeros((3, 1, 1)), np.zeros((3, 1)), np.zeros((3, 1)), infos)
        assert new.store.writes == writes


# SB3's tests/test_save_load.py::test_warn_buffer: only a second learn() that resets the envs with
# optimize_memory_usage=True warns that the last trajectory is truncated.
@pytest.mark.parametrize("optimize_memory_usage", [False, True])
@pytest.mark.parametrize("kind", BUFFERS)
def test_warn_buffer(recwarn, kind, optimize_memory_usage, one_torch_thread):
    kw = {} if kind == "sb3" else {"replay_buffer_class": DqnfastReplayBuffer}
    model = DQN("MlpPolicy", make_venv(1), buffer_size=100, optimize_memory_usage=optimize_memory_usage,
                replay_buffer_kwargs={"handle_timeout_termination": not optimize_memory_usage},
                policy_kwargs=dict(net_arch=[16]), learning_starts=10, device="cpu", seed=0, **kw)
    model.learn(60)
    model.learn(60, reset_num_timesteps=False)
    assert not [w for w in recwarn if "last trajectory" in str(w.message)]
    model.learn(60)
    warned = [w for w in recwarn if "The last trajectory in the replay buffer will be truncated" in str(w.message)]
    assert len(warned) == int(optimize_memory_usage)


# SB3's tests/test_n_step_replay.py. The buffer refuses n_steps > 1 (SB3's window semantics differ from the
# store's native n-step returns, see dqnfast.sb3._check_n_steps); SB3's side runs to keep the port honest.
def fill(buffer, length, done_at=None, truncated_at=None):
    """SB3's fill_buffer on frames: reward 1, frame k has value k (a zero-padded stack at k = 0)."""
    stack = np.zeros((1, 6, 5, 4), np.uint8)
    for i in range(length):
        nxt = np.concatenate([stack[..., 1:], np.full((1, 6, 5, 1), i + 1, np.uint8)], axis=-1)
        done = np.array([i in (done_at, truncated_at)])
        buffer.add(stack, nxt, np.zeros((1, 1)), np.array([1.0]), done, [{"TimeLimit.truncated": i == truncated_at}])
        stack = np.zeros_like(stack) if done[0] else nxt
        if done[0]:
            stack[..., -1] = i + 1


def expected_nstep_reward(gamma, n_steps, stop_idx=None):
    ret = 0.0
    for step in reversed(range(n_steps)):
        ret = 1.0 + gamma * (step != stop_idx) * ret
    return ret


@pytest.mark.parametrize("case", ["early_termination", "early_truncation", "no_terminations"])
@pytest.mark.parametrize("kind", BUFFERS)
def test_nstep(kind, case):
    venv = make_venv(1)
    gamma, n_steps, base = 0.98, 3, 0
    stop = {"early_termination": 1, "early_truncation": 2, "no_terminations": None}[case]
    if kind == "dqnfast":
        with pytest.raises(ValueError, match="n_steps=3"):
            make_buffer(kind, venv, 10, device="cpu", n_steps=n_steps, gamma=gamma)
        pytest.skip("DqnfastReplayBuffer refuses n_steps > 1 (asserted above): SB3's NStepReplayBuffer samples the "
                    "newest n_steps - 1 steps with a window cut short at pos - 1, the native n-step returns wait "
                    "for all n steps")
    buffer = NStepReplayBuffer(10, venv.observation_space, venv.action_space, device="cpu", n_steps=n_steps,
                               gamma=gamma)
    fill(buffer, 10, done_at=stop if case == "early_termination" else None,
         truncated_at=stop if case == "early_truncation" else None)
    batch = buffer._get_samples(np.array([base]))
    np.testing.assert_allclose(batch.rewards.item(), expected_nstep_reward(gamma, n_steps, stop), rtol=1e-6)
    assert batch.dones.item() == float(case == "early_termination")
    last = n_steps - 1 if stop is None else stop
    assert batch.next_observations[0, ..., -1].max().item() == last + 1  # next_obs ends the window


# SB3's tests/test_n_step_replay.py::test_match_normal_buffer: with n_steps=1 (accepted), the plain buffer.
def test_match_normal_buffer():
    venv = make_venv(1)
    ref = NStepReplayBuffer(10, venv.observation_space, venv.action_space, device="cpu", n_steps=1)
    ours = DqnfastReplayBuffer(10, venv.observation_space, venv.action_space, device="cpu", n_steps=1, gamma=0.99,
                               seed=0)
    ids = []
    Stepper(venv).run([ref, ours], 8, after_add=lambda: ids.append(ours.last_indices[0]))
    np.random.seed(0)  # (SB3 draws the env of each row from numpy's global generator; one env here)
    want = ref._get_samples(np.arange(8))
    got = ours._get_samples(np.array(ids))
    assert_samples_equal(got, want)
    assert got.discounts is None and want.discounts.eq(0.99).all()  # DQN uses its gamma for None
