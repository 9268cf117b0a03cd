"""dqnfast.wrappers on real Breakout: step-for-step agreement with gymnasium's AtariPreprocessing,
the DQN training stack from make_atari_env, and early, clear errors."""
from __future__ import annotations

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
ale_py = pytest.importorskip("ale_py")
pytest.importorskip("cv2")  # gymnasium's AtariPreprocessing, the baseline, resizes with OpenCV

import dqnfast  # noqa: E402
from dqnfast.wrappers import (AtariPreprocessing, ClipRewardEnv, EpisodicLifeEnv, FireResetEnv,  # noqa: E402
                              make_atari_env)
from support.tiers import one_fast_case  # noqa: E402

pytestmark = pytest.mark.atari
gym.register_envs(ale_py)

BREAKOUT = "ALE/Breakout-v5"


def raw_env(**kw):
    kw.setdefault("repeat_action_probability", 0.0)
    return gym.make(BREAKOUT, frameskip=1, **kw)


def lockstep(ours, theirs, steps, seed, check, action_seed=0):
    """Reset both with `seed`, then feed both the same random actions; `check` compares each step.
    Reset infos (the no-op steps' info included) must be equal too."""
    o1, i1 = ours.reset(seed=seed)
    o2, i2 = theirs.reset(seed=seed)
    assert i1 == i2
    check(o1, o2, None, None)
    actions = np.random.default_rng(action_seed).integers(0, ours.action_space.n, steps)
    ends = 0
    for a in actions:
        s1 = ours.step(int(a))
        s2 = theirs.step(int(a))
        assert s1[1] == s2[1] and s1[2] == s2[2] and s1[3] == s2[3]  # reward, terminated, truncated
        check(s1[0], s2[0], s1, s2)
        if s1[2] or s1[3]:
            ends += 1
            o1, i1 = ours.reset()
            o2, i2 = theirs.reset()
            assert i1 == i2
            check(o1, o2, None, None)
    return ends


@pytest.mark.parametrize("frame_skip,life_loss", one_fast_case((4, True), (3, False), (1, True)))
def test_gray_matches_gymnasium_step_for_step(frame_skip, life_loss):
    kw = dict(frame_skip=frame_skip, terminal_on_life_loss=life_loss, noop_max=30)
    screens = []  # ALE's gray screen after every emulated frame under our wrapper

    class Spy(gym.Wrapper):
        def step(self, action):
            out = self.env.step(action)
            screens.append(self.env.unwrapped.ale.getScreenGrayscale())
            return out

    ours = AtariPreprocessing(Spy(raw_env()), interp="area", **kw)
    theirs = gym.wrappers.AtariPreprocessing(raw_env(), **kw)

    def check(a, b, s1, _s2):
        assert a.shape == b.shape == (84, 84) and a.dtype == np.uint8
        assert np.abs(a.astype(int) - b).max() <= 1
        # Exact: resizing gymnasium's own pooled buffer (it pools into its first buffer in place)
        # with the kernel gives our observation, including at episode ends mid-skip.
        np.testing.assert_array_equal(a, dqnfast.preprocess(theirs.obs_buffer[0], interp="area"))
        if s1 is not None and not (s1[2] or s1[3]):  # a full skip: the last two raw screens, max-pooled
            prev = screens[-2] if frame_skip > 1 else None
            np.testing.assert_array_equal(a, dqnfast.preprocess(screens[-1], prev=prev, interp="area"))

    ends = lockstep(ours, theirs, 250, seed=7, check=check)
    if life_loss:
        assert ends >= 1  # the mid-skip episode-end path ran
    assert ours.lives == theirs.lives and ours.game_over == theirs.game_over


class _FakeAle:
    def __init__(self, env):
        self.env = env

    def getScreenRGB(self, out=None):  # noqa: N802 - ALE's names
        out[...] = self.env.screen()
        return out

    def getScreenGrayscale(self, out=None):  # noqa: N802
        out[...] = self.env.screen()[..., 1]
        return out

    def lives(self):
        return self.env.lives_left


class FakeAtari(gym.Env):
    """Scripted ALE stand-in: random screens, episodes ending after set numbers of frames, and a
    life lost every 7 frames, so episode ends land on every position within a frame skip."""

    def __init__(self, lengths):
        self.observation_space = gym.spaces.Box(0, 255, (30, 20, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self._frameskip = 1
        self.ale = _FakeAle(self)
        self.lengths = list(lengths)
        self.episode = -1

    def get_action_meanings(self):
        return ["NOOP", "FIRE", "RIGHT", "LEFT"]

    def screen(self):
        return np.random.default_rng([self.episode, self.t]).integers(0, 256, (30, 20, 3), dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t, self.lives_left = 0, 1000
        return self.screen(), {}

    def step(self, action):
        self.t += 1
        self.lives_left -= self.t % 7 == 0
        return self.screen(), float(self.t), self.t >= self.lengths[self.episode % len(self.lengths)], False, {}


@pytest.mark.parametrize("frame_skip", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("life_loss", [False, True])
@pytest.mark.parametrize("grayscale", one_fast_case(True, False))
def test_state_machine_matches_gymnasium_at_every_episode_end(frame_skip, life_loss, grayscale):
    lengths = [3, 40, 41, 42, 43, 44, 45, 46, 47, 29, 31]  # some end during the no-op reset
    kw = dict(frame_skip=frame_skip, terminal_on_life_loss=life_loss, grayscale_obs=grayscale, screen_size=(9, 11))
    ours = AtariPreprocessing(FakeAtari(lengths), interp="area", **kw)
    theirs = gym.wrappers.AtariPreprocessing(FakeAtari(lengths), **kw)

    def check(a, b, _s1, _s2):
        assert a.shape == b.shape
        assert np.abs(a.astype(int) - b).max() <= 1
        pooled = theirs.obs_buffer[0]
        planes = [pooled] if grayscale else [pooled[..., c] for c in range(3)]
        want = np.stack([dqnfast.preprocess(p, size=(11, 9), interp="area") for p in planes], -1)
        np.testing.assert_array_equal(a, want[..., 0] if grayscale else want)

    ends = lockstep(ours, theirs, 300, seed=5, check=check)
    assert ends >= 5


def test_rgb_output_and_obs_options_match_gymnasium():
    kw = dict(grayscale_obs=False, screen_size=(80, 96), scale_obs=True)
    ours = AtariPreprocessing(raw_env(), interp="area", **kw)
    theirs = gym.wrappers.AtariPreprocessing(raw_env(), **kw)
    assert ours.observation_space == theirs.observation_space

    def check(a, b, _s1, _s2):
        assert a.shape == b.shape == (96, 80, 3) and a.dtype == np.float32
        assert np.abs(np.rint(a * 255).astype(int) - np.rint(b * 255).astype(int)).max() <= 1
        pooled = theirs.obs_buffer[0]
        want = np.stack([dqnfast.preprocess(pooled[..., c], size=(96, 80), interp="area") for c in range(3)], -1)
        np.testing.assert_array_equal(a, want.astype(np.float32) / 255.0)

    lockstep(ours, theirs, 60, seed=3, check=check)


def test_newaxis_nearest_crop_and_mean():
    crop = (34, 194, 8, 152)
    env = AtariPreprocessing(raw_env(), grayscale_newaxis=True, interp="nearest", crop=crop, screen_size=(42, 50))
    assert env.observation_space.shape == (50, 42, 1)
    spy = []  # raw RGB screens of every emulator frame
    inner = env.env

    class Spy(gym.Wrapper):
        def step(self, action):
            out = self.env.step(action)
            spy.append(self.env.unwrapped.ale.getScreenRGB())
            return out

    env.env = Spy(inner)
    mean_env = AtariPreprocessing(raw_env(), gray="mean", interp="nearest", crop=crop, screen_size=(42, 50))
    spy_mean = []

    class SpyMean(gym.Wrapper):
        def step(self, action):
            out = self.env.step(action)
            spy_mean.append(self.env.unwrapped.ale.getScreenRGB())
            return out

    mean_env.env = SpyMean(mean_env.env)
    env.reset(seed=1)
    mean_env.reset(seed=1)
    for a in np.random.default_rng(1).integers(0, 4, 40):
        obs, _, term, trunc, _ = env.step(int(a))
        mobs, *_ = mean_env.step(int(a))
        assert not (term or trunc)
        kw = dict(prev=spy[-2], crop=crop, size=(50, 42))
        np.testing.assert_array_equal(obs[..., 0], dqnfast.preprocess(spy[-1], **kw))  # luma of RGB == ALE gray
        np.testing.assert_array_equal(mobs, dqnfast.preprocess(spy_mean[-1], prev=spy_mean[-2], crop=crop,
                                                               size=(50, 42), gray="mean"))


def test_constructor_errors():
    with pytest.raises(ValueError, match="Disable frame-skipping"):
        AtariPreprocessing(gym.make(BREAKOUT, frameskip=4, repeat_action_probability=0.0))
    with pytest.raises(ValueError, match="frame_skip"):
        AtariPreprocessing(raw_env(), frame_skip=0)
    with pytest.raises(ValueError, match="screen_size"):
        AtariPreprocessing(raw_env(), screen_size=0)
    with pytest.raises(ValueError, match="noop_max"):
        AtariPreprocessing(raw_env(), noop_max=-1)
    with pytest.raises(ValueError, match="outside the 210x160 frame"):
        AtariPreprocessing(raw_env(), crop=(0, 300, 0, 160))
    with pytest.raises(ValueError, match="interp must be"):
        AtariPreprocessing(raw_env(), interp="bilinear")
    with pytest.raises(ValueError, match="gray must be"):
        AtariPreprocessing(raw_env(), gray="average")


# ---- make_atari_env -----------------------------------------------------------------------------------


def play(env, steps, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    obs, info = env.reset()
    out.append(("reset", obs, 0.0, False, False, info))
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        out.append(("step", obs, r, term, trunc, info))
        if term or trunc:
            obs, info = env.reset()
            out.append(("reset", obs, 0.0, False, False, info))
    return out


def test_make_atari_env_training_stack():
    clipped = make_atari_env(seed=11, max_episode_steps=None)
    raw = make_atari_env(seed=11, clip_rewards=False)
    assert clipped.observation_space.shape == (84, 84) and clipped.observation_space.dtype == np.uint8
    assert clipped.unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    a, b = play(clipped, 700), play(raw, 700)  # clipping changes no dynamics: same trajectory
    assert len(a) == len(b)
    game_return = 0.0
    episodes = life_ends = 0
    for (k1, o1, r1, t1, u1, i1), (k2, o2, r2, t2, u2, i2) in zip(a, b):
        assert k1 == k2 and t1 == t2 and u1 == u2
        np.testing.assert_array_equal(o1, o2)
        assert o1.shape == (84, 84) and o1.dtype == np.uint8
        assert r1 == np.sign(r2) and r1 in (-1.0, 0.0, 1.0)
        game_return += r2
        life_ends += t1
        if "episode" in i1 and k1 == "step":  # the real game ended on this step
            episodes += 1
            assert float(i1["episode"]["r"]) == game_return == float(i2["episode"]["r"])
            assert t1 or u1
            game_return = 0.0
    assert episodes >= 1, "a random agent loses all five lives within 700 steps"
    assert life_ends > episodes  # episodic life: each lost life ended a training episode


def test_make_atari_env_is_reproducible_and_options_apply():
    e1 = make_atari_env(seed=5, interp="area", crop=(34, 194, 8, 152), screen_size=64, episodic_life=False)
    e2 = make_atari_env(seed=5, interp="area", crop=(34, 194, 8, 152), screen_size=64, episodic_life=False)
    for x, y in zip(play(e1, 50), play(e2, 50)):
        np.testing.assert_array_equal(x[1], y[1])
        assert x[1].shape == (64, 64)
    sticky = make_atari_env(repeat_action_probability=0.25, fire_reset=False, clip_rewards=False)
    assert sticky.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    names = []
    e = sticky
    while hasattr(e, "env"):
        names.append(type(e).__name__)
        e = e.env
    assert "FireResetEnv" not in names and "ClipRewardEnv" not in names and "EpisodicLifeEnv" in names
    limited = make_atari_env(max_episode_steps=20, episodic_life=False)
    limited.reset()
    steps = 0
    while True:
        _, _, term, trunc, info = limited.step(0)
        steps += 1
        if term or trunc:
            break
    # The time limit and the episode length count every agent step of the game, FireReset's two included.
    assert trunc and steps + 2 == 20 and info["episode"]["l"] == 20


def test_make_atari_env_vector():
    envs = make_atari_env(num_envs=2, seed=3)
    assert isinstance(envs, gym.vector.SyncVectorEnv)
    obs, _ = envs.reset()
    assert obs.shape == (2, 84, 84) and obs.dtype == np.uint8
    for _ in range(5):
        obs, rew, term, trunc, _ = envs.step(np.array([1, 3]))
        assert obs.shape == (2, 84, 84) and rew.shape == (2,)
    envs.close()


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(env_id="ALE/Breakot-v5"), ValueError, "unknown env id 'ALE/Breakot-v5'"),
    (dict(env_id="CartPole-v1"), ValueError, "not an Atari"),
    (dict(env_id=3), TypeError, "env_id must be a str"),
    (dict(num_envs=0), ValueError, "num_envs must be positive"),
    (dict(num_envs=2.0), TypeError, "num_envs must be an int"),
    (dict(seed=-1), ValueError, "seed must be non-negative"),
    (dict(frame_skip=0), ValueError, "frame_skip"),
    (dict(repeat_action_probability=1.5), ValueError, r"repeat_action_probability must be in \[0, 1\]"),
    (dict(vectorization="threads"), ValueError, "vectorization must be 'sync' or 'async'"),
    (dict(crop=(0, 10, 0, 500)), ValueError, "outside the 210x160 frame"),
    (dict(interp="cubic"), ValueError, "interp must be"),
    (dict(gray="bt709"), ValueError, "gray must be"),
    (dict(max_episode_steps=0), ValueError, "max_episode_steps"),
])
def test_make_atari_env_bad_args(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        make_atari_env(**kw)


def test_small_wrappers_alone():
    env = ClipRewardEnv(raw_env())
    assert env.reward(7.0) == 1.0 and env.reward(-0.5) == -1.0 and env.reward(0) == 0.0
    with pytest.raises(ValueError, match="FIRE"):
        FireResetEnv(_no_fire_env())
    life = EpisodicLifeEnv(AtariPreprocessing(raw_env(), noop_max=0))
    life.reset(seed=0)
    assert life.lives == 5


def _no_fire_env():
    class NoFire(gym.Wrapper):
        pass

    env = NoFire(raw_env())
    env.unwrapped.get_action_meanings = lambda: ["NOOP", "RIGHT", "LEFT"]
    return env


# ---- the direct ALE path: AtariPreprocessing steps ALE itself when the chain allows it -----------------


@pytest.mark.parametrize("interp", ["nearest", "area"])
@pytest.mark.parametrize("frame_skip,life_loss", one_fast_case((4, True), (3, False), (1, True)))
def test_direct_path_matches_gymnasium(interp, frame_skip, life_loss):
    """No wrapper in between: steps go straight to ALE, reading only the screens they use (palette
    indices through the learned gray table for nearest). Everything still matches gymnasium."""
    kw = dict(frame_skip=frame_skip, terminal_on_life_loss=life_loss, noop_max=30)
    ours = AtariPreprocessing(raw_env(obs_type="grayscale"), interp=interp, crop=(31, 195, 0, 160), **kw)
    theirs = gym.wrappers.AtariPreprocessing(raw_env(), **kw)
    assert (ours._palette is not None) == (interp == "nearest")

    def check(a, b, s1, s2):
        assert a.shape == (84, 84) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, dqnfast.preprocess(theirs.obs_buffer[0], crop=(31, 195, 0, 160), interp=interp))
        if s1 is not None:
            assert s1[4] == s2[4]  # info: lives and frame numbers of the last emulated frame

    ends = lockstep(ours, theirs, 250, seed=7, check=check)
    assert ours._direct  # the test covered the direct path
    if life_loss:
        assert ends >= 1
    assert ours.lives == theirs.lives and ours.game_over == theirs.game_over


def lockstep_truncations(ours, theirs, steps, seed, interp):
    """lockstep with our observations exactly ``preprocess`` of gymnasium's pooled screen; returns
    how many steps were truncated."""
    truncations = 0

    def check(a, b, s1, _s2):
        nonlocal truncations
        np.testing.assert_array_equal(a, dqnfast.preprocess(theirs.obs_buffer[0], interp=interp))
        truncations += bool(s1 and s1[3])

    lockstep(ours, theirs, steps, seed=seed, check=check)
    return truncations


def test_direct_path_reports_ale_truncation():
    """ALE's own frame limit (max_num_frames_per_episode) truncates on the direct path as through the env."""
    kw = dict(frame_skip=4, noop_max=5)
    ours = AtariPreprocessing(raw_env(max_num_frames_per_episode=90), interp="nearest", **kw)
    theirs = gym.wrappers.AtariPreprocessing(raw_env(max_num_frames_per_episode=90), **kw)
    truncations = lockstep_truncations(ours, theirs, 80, seed=4, interp="nearest")
    assert ours._direct and truncations >= 2


def test_direct_path_only_where_nothing_in_between_changes_a_step():
    # A time limit counts the frames it sees: with it in the chain, steps go through the env.
    limited = AtariPreprocessing(gym.make(BREAKOUT, frameskip=1, repeat_action_probability=0.0, max_episode_steps=50))
    theirs = gym.wrappers.AtariPreprocessing(gym.make(BREAKOUT, frameskip=1, repeat_action_probability=0.0,
                                                      max_episode_steps=50))
    truncations = lockstep_truncations(limited, theirs, 40, seed=2, interp="area")
    assert not limited._direct and truncations >= 2
    # Any other wrapper in between, or one swapped in later, also takes steps through the env.
    assert not AtariPreprocessing(gym.Wrapper(raw_env()))._direct_ready()
    env = AtariPreprocessing(raw_env(), noop_max=0)
    env.reset(seed=0)
    assert not env._direct  # the env checker's first step is still to come
    env.step(0)
    assert env._direct
    seen = []

    class Spy(gym.Wrapper):
        def step(self, action):
            seen.append(action)
            return self.env.step(action)

    env.env = Spy(env.env)
    env.step(1)
    assert seen == [1, 1, 1, 1]


@pytest.mark.parametrize("made", [False, True])
def test_direct_path_only_where_the_env_is_known_to_step_one_frame(made):
    """The direct path needs the AtariEnv's frameskip to be 1, as its spec (gymnasium.make's record of
    its arguments) says. A frame-skipping env, or one built without gymnasium.make (no spec, whatever
    its frameskip), steps through the env, and matches gymnasium's wrapper on the same env."""
    from ale_py.env import AtariEnv

    def make(frameskip):
        if made:
            return gym.make(BREAKOUT, frameskip=frameskip, repeat_action_probability=0.0)
        return AtariEnv(game="breakout", frameskip=frameskip, repeat_action_probability=0.0)

    for frameskip in (4, 1):
        kw = dict(frame_skip=1, noop_max=10)  # (the wrapper skips no frames itself, so it accepts frameskip=4)
        ours = AtariPreprocessing(make(frameskip), interp="nearest", **kw)
        theirs = gym.wrappers.AtariPreprocessing(make(frameskip), **kw)

        def check(a, b, s1, s2):
            np.testing.assert_array_equal(a, dqnfast.preprocess(theirs.obs_buffer[0], interp="nearest"))
            if s1 is not None:
                assert s1[4] == s2[4]

        lockstep(ours, theirs, 120, seed=3, check=check)
        assert ours._direct == (made and frameskip == 1)


def test_direct_path_keeps_the_env_contract():
    env = AtariPreprocessing(raw_env())
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)  # the order-enforcing wrapper still sees a step before the first reset
    env.reset(seed=0)
    env.step(0)
    assert env._direct
    theirs = gym.make(BREAKOUT, frameskip=1)
    theirs.reset(seed=0)
    with pytest.raises(IndexError) as ours_err:
        env.step(9)
    with pytest.raises(IndexError) as their_err:
        theirs.step(9)
    assert str(ours_err.value) == str(their_err.value)


@pytest.mark.parametrize("interp", ["nearest", "area"])
def test_wrapper_pickles_and_continues(interp):
    import pickle
    env = AtariPreprocessing(raw_env(), interp=interp)
    env.reset(seed=3)
    for a in (1, 2, 3):
        env.step(a)
    twin = pickle.loads(pickle.dumps(env))  # (ALE's emulator state itself is not pickled: reset both)
    env.reset(seed=4)
    twin.reset(seed=4)
    for a in np.random.default_rng(0).integers(0, 4, 30):
        s1, s2 = env.step(int(a)), twin.step(int(a))
        np.testing.assert_array_equal(s1[0], s2[0])
        assert s1[1:] == s2[1:]
    assert (twin._palette is not None) == (interp == "nearest") and twin._direct


class _WrongPalette:
    """Stands in for _core.PaletteResizer: reports success but writes wrong gray values, or refuses."""

    def __init__(self, learnable):
        self.learnable = learnable

    def gather(self, screen, out):
        out.fill(7)
        return self.learnable

    def learn(self, screen, gray):
        return False


@pytest.mark.parametrize("learnable", [True, False])
def test_palette_path_falls_back_to_gray_screens(learnable):
    """A table that disagrees with ALE's gray screen (checked after every reset), or that cannot learn
    a frame's colours, is dropped with a warning; the observations stay exact."""
    ours = AtariPreprocessing(raw_env(), interp="nearest")
    theirs = gym.wrappers.AtariPreprocessing(raw_env())
    ours._palette = _WrongPalette(learnable)

    def check(a, b, _s1, _s2):
        np.testing.assert_array_equal(a, dqnfast.preprocess(theirs.obs_buffer[0], interp="nearest"))

    with pytest.warns(RuntimeWarning, match="reading ALE's gray screens"):
        lockstep(ours, theirs, 30, seed=1, check=check)
    assert ours._palette is None


# ---- PaletteResizer: the native gather through the learned table --------------------------------------

PALETTE_LEVELS = dqnfast._core._simd_supported()


@pytest.fixture(params=PALETTE_LEVELS)
def simd(request):
    assert dqnfast._core.set_simd(request.param) == request.param
    yield request.param
    dqnfast._core.set_simd("auto")


@pytest.mark.parametrize("shape,crop,size", [
    ((210, 160), (31, 195, 0, 160), (84, 84)),
    ((210, 160), None, (110, 84)),
    ((7, 300), (1, 6, 3, 290), (13, 129)),  # upscaling rows, more than 64 columns per row chunk
    ((50, 40), (0, 50, 39, 40), (3, 1)),
])
def test_palette_resizer_matches_numpy(simd, shape, crop, size):
    from dqnfast.preprocess_reference import nearest_index
    rng = np.random.default_rng(list(shape) + list(size))
    table = rng.integers(0, 256, 256).astype(np.uint8)
    screen = rng.integers(0, 256, shape).astype(np.uint8)  # every index, odd ones and >= 128 included
    p = dqnfast._core.PaletteResizer(shape, crop, size)
    out = np.empty(size, np.uint8)
    assert not p.gather(screen, out)  # nothing learned yet
    full = np.arange(256, dtype=np.uint8).reshape(16, 16)
    if shape[0] * shape[1] >= 256:  # teach every index at once from a screen that shows them all
        teach = np.resize(full.ravel(), shape).astype(np.uint8)
        assert p.learn(teach, table[teach])
    else:
        assert p.learn(screen, table[screen])
    t, b, l, r = crop or (0, shape[0], 0, shape[1])
    want = table[screen[t:b, l:r][nearest_index(b - t, size[0])][:, nearest_index(r - l, size[1])]]
    assert p.gather(screen, out)
    np.testing.assert_array_equal(out, want)
    assert all(p.gray_of(i) == table[i] for i in np.unique(screen))


def test_palette_resizer_learning_and_errors(simd):
    p = dqnfast._core.PaletteResizer((4, 4), None, (2, 2))
    screen = np.array([[0, 2, 4, 6]] * 4, np.uint8)
    assert p.learn(screen, screen * 10)
    assert p.gray_of(2) == 20 and p.gray_of(1) == -1
    assert not p.learn(screen, screen * 10 + 1)  # contradicts what was learned: nothing changes
    assert p.gray_of(2) == 20
    clash = screen.copy()
    assert not p.learn(np.zeros((4, 4), np.uint8), np.arange(16, dtype=np.uint8).reshape(4, 4))  # 0 -> 0 and 1
    assert p.gray_of(0) == 0
    out = np.empty((2, 2), np.uint8)
    clash[1, 3] = 9  # a sampled pixel (rows and columns 1 and 3 are) with an unknown index
    assert not p.gather(clash, out)
    clash[2, 1] = 9  # not sampled: no matter
    assert p.gather(np.where(clash == 9, 0, clash).astype(np.uint8), out)
    clash[1, 3] = 2
    assert p.gather(clash, out)
    assert p.gather(screen[:, ::-1].copy(), out)  # any packed screen of known indices
    with pytest.raises(ValueError, match=r"screen must have shape \(4, 4\)"):
        p.gather(np.zeros((4, 5), np.uint8), out)
    with pytest.raises(TypeError, match="screen must have dtype uint8"):
        p.gather(np.zeros((4, 4), np.int32), out)
    with pytest.raises(ValueError, match="out must be writeable"):
        ro = np.empty((2, 2), np.uint8)
        ro.flags.writeable = False
        p.gather(screen, ro)
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        p.gather(screen, np.empty((2, 4), np.uint8)[:, ::2])
    with pytest.raises(ValueError, match=r"gray must have shape \(4, 4\)"):
        p.learn(screen, np.zeros((4,), np.uint8))
    with pytest.raises(IndexError, match="palette index"):
        p.gray_of(256)
    strided = np.zeros((4, 8), np.uint8)[:, ::2]
    assert p.gather(strided, out) and (out == 0).all()  # strided screens are read as they are
    with pytest.raises(ValueError, match=r"crop \(top, bottom, left, right\) = \(0, 211, 0, 160\) is outside the 210x160"):
        dqnfast._core.PaletteResizer((210, 160), (0, 211, 0, 160), (84, 84))
    with pytest.raises(ValueError, match=r"size \(height, width\) = \(0, 84\) must be positive"):
        dqnfast._core.PaletteResizer((210, 160), None, (0, 84))
    with pytest.raises(TypeError, match="crop entries must be an int"):
        dqnfast._core.PaletteResizer((210, 160), (0, 1.5, 0, 160), (84, 84))
