"""Gymnasium wrappers for DQN on Atari, on the native `dqnfast.preprocess` kernel.

- :class:`AtariPreprocessing`: a drop-in for ``gymnasium.wrappers.AtariPreprocessing`` (same
  arguments, defaults, stepping, no-op reset and RNG use, so the same seed and actions give the
  same trajectory) plus ``crop``, ``interp`` and ``gray``.
- :class:`FireResetEnv`, :class:`EpisodicLifeEnv`, :class:`ClipRewardEnv`: the usual DQN training
  wrappers (as in Stable-Baselines3), for the gymnasium API.
- :func:`make_atari_env`: the whole stack, one env or a vector of them.

Observations are single frames; frame stacking is the replay buffer's job (``rb.stacked(env)``).
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Sequence, SupportsFloat, Tuple, Union

import numpy as np

from . import _core
from ._validate import atari_env_id, number, positive_int
from .preprocessing import preprocess

try:
    import gymnasium as gym
    from gymnasium.spaces import Box
except ImportError as e:  # pragma: no cover - gymnasium is an optional dependency
    raise ImportError('dqnfast.wrappers needs gymnasium and ale-py: pip install "dqnfast[atari]"') from e

__all__ = ["AtariPreprocessing", "ClipRewardEnv", "EpisodicLifeEnv", "FireResetEnv", "make_atari_env"]


def _check_preprocess_args(screen: Tuple[int, ...], crop, size: Tuple[int, int], interp: str, gray: str) -> None:
    """Fail at construction, with preprocess's own messages, rather than on the first step."""
    preprocess(np.zeros(screen, np.uint8), crop=crop, size=size, interp=interp, gray=gray)


class AtariPreprocessing(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``gymnasium.wrappers.AtariPreprocessing`` on the native kernel.

    Same arguments and defaults (``noop_max=30, frame_skip=4, screen_size=84,
    terminal_on_life_loss=False, grayscale_obs=True, grayscale_newaxis=False, scale_obs=False``;
    ``screen_size`` as a tuple is (width, height) like gymnasium's) and the same stepping: the
    last two emulator frames of each skip are max-pooled, no-op resets draw from the env's
    ``np_random`` exactly as gymnasium does, and even the observation at an episode end that
    interrupts a skip reproduces gymnasium's buffer state. Wrap an ALE env made with
    ``frameskip=1``.

    Extra keyword arguments:

    - ``crop=(top, bottom, left, right)`` on the 210x160 screen before resizing (None: all).
    - ``interp``: ``"area"`` (default; within +-1 of gymnasium's cv2 INTER_AREA) or ``"nearest"``.
    - ``gray``: ``"luma"`` pools and resizes ALE's grayscale screen, which is luma, so it pools
      gray values exactly as gymnasium does; ``"mean"`` pools the RGB screen per channel, then
      averages the channels. Ignored when ``grayscale_obs=False`` (RGB output).
    """

    def __init__(
        self,
        env: gym.Env,
        noop_max: int = 30,
        frame_skip: int = 4,
        screen_size: Union[int, Tuple[int, int]] = 84,
        terminal_on_life_loss: bool = False,
        grayscale_obs: bool = True,
        grayscale_newaxis: bool = False,
        scale_obs: bool = False,
        *,
        crop: Optional[Sequence[int]] = None,
        interp: str = "area",
        gray: str = "luma",
    ):
        gym.utils.RecordConstructorArgs.__init__(
            self, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size,
            terminal_on_life_loss=terminal_on_life_loss, grayscale_obs=grayscale_obs,
            grayscale_newaxis=grayscale_newaxis, scale_obs=scale_obs, crop=crop, interp=interp, gray=gray)
        gym.Wrapper.__init__(self, env)
        # The same checks, in the same order, as gymnasium's wrapper.
        if frame_skip <= 0:
            raise ValueError(f"Expect the `frame_skip` to be positive, actually: {frame_skip}")
        if not ((isinstance(screen_size, int) and screen_size > 0) or (
                isinstance(screen_size, tuple) and len(screen_size) == 2
                and all(isinstance(s, int) and s > 0 for s in screen_size))):
            raise ValueError(f"Expect the `screen_size` to be positive, actually: {screen_size}")
        if frame_skip > 1 and getattr(env.unwrapped, "_frameskip", None) != 1:
            raise ValueError("Disable frame-skipping in the original env (make it with frameskip=1): "
                             "otherwise frames are skipped twice, there and in this wrapper")
        if noop_max < 0:
            raise ValueError(f"Expect the `noop_max` to be non-negative, actually: {noop_max}")
        if noop_max > 0 and env.unwrapped.get_action_meanings()[0] != "NOOP":
            raise ValueError("When noop_max > 0, the first action meaning must be 'NOOP'")
        if not isinstance(env.observation_space, Box):
            raise TypeError(f"AtariPreprocessing wrapper requires a Box observation space, got {type(env.observation_space)}")

        self.noop_max = noop_max
        self.frame_skip = frame_skip
        self.screen_size: Tuple[int, int] = screen_size if isinstance(screen_size, tuple) else (screen_size, screen_size)
        self.terminal_on_life_loss = terminal_on_life_loss
        self.grayscale_obs = grayscale_obs
        self.grayscale_newaxis = grayscale_newaxis
        self.scale_obs = scale_obs
        self.crop = None if crop is None else tuple(crop)
        self.interp = interp
        self.gray = gray
        self._size = (self.screen_size[1], self.screen_size[0])  # the kernel takes (height, width)

        # ALE's gray screen is luma; the RGB screen is needed for "mean" and for RGB output.
        self._rgb_screen = not grayscale_obs or gray == "mean"
        hw = tuple(env.observation_space.shape[:2])
        screen = hw + (3,) if self._rgb_screen else hw
        _check_preprocess_args(screen, self.crop, self._size, interp, gray)
        # Gymnasium keeps two screen buffers and max-pools into the first in place. Here (_a, _b)
        # stand for its buffers (first = max(_a, _b) once an observation was made) and the two
        # spares take the next step's screens, so no pooled copy is ever written on the hot path.
        # Nearest resizing of gray frames commutes with max-pooling, so then the buffers hold
        # resized frames (each screen is resized as it is read) and pooling is a max of two small
        # frames. On ALE the screen is then read as palette indices and resized through a gray
        # table learned from ALE itself (see _core.PaletteResizer): ~1 us a frame instead of ~13 us for
        # ALE's gray screen.
        self._small = grayscale_obs and gray == "luma" and interp == "nearest"
        self._palette = None
        if self._small:
            self._gray_screen = np.zeros(hw, np.uint8)
            self._index_screen = np.zeros(hw, np.uint8)
            if _is_ale(env.unwrapped) and not env.unwrapped.ale.getBool("color_averaging"):
                self._palette = _core.PaletteResizer(hw, self.crop, self._size)
        buf = self._size if self._small else screen
        self._a, self._b, self._spare0, self._spare1 = (np.zeros(buf, np.uint8) for _ in range(4))
        self.lives = 0
        self.game_over = False
        # Stepping ALE directly (see _step_direct) when nothing between this wrapper and the ALE
        # env changes what a step does (a reset and the env checker's first step come first).
        self._direct = False
        self._direct_env: Optional[gym.Env] = None  # self.env when the chain below was last walked
        self._direct_wrappers: Optional[Tuple[gym.Env, ...]] = None  # what _direct_chain found then
        self._atari: Any = None  # self.env.unwrapped, then
        self._atari_frameskip: Any = None  # its frameskip, as its spec said (None: not known)
        self._ale_actions: Optional[List[Any]] = None  # the ALE action of each action index, when direct

        low, high, dtype = (0, 1, np.float32) if scale_obs else (0, 255, np.uint8)
        shape: Tuple[int, ...] = (self.screen_size[1], self.screen_size[0], 1 if grayscale_obs else 3)
        if grayscale_obs and not grayscale_newaxis:
            shape = shape[:-1]
        self.observation_space = Box(low=low, high=high, shape=shape, dtype=dtype)

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_palette"] = self._palette is not None  # a cache of ALE's palette: rebuilt when unpickled
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        palette = state.pop("_palette")
        self.__dict__.update(state)
        self._palette = _core.PaletteResizer(self._gray_screen.shape, self.crop, self._size) if palette else None

    @property
    def ale(self):
        """The ALE interface (a property, as in gymnasium, so the wrapper pickles)."""
        return self.env.unwrapped.ale

    def _grab(self, buf: np.ndarray, ale=None) -> None:
        """The current screen into ``buf``: the full screen, or (``_small``) resized."""
        if ale is None:
            ale = self.ale
        if not self._small:
            if self._rgb_screen:
                ale.getScreenRGB(buf)
            else:
                ale.getScreenGrayscale(buf)
            return
        if self._palette is not None:
            ale.getScreen(self._index_screen)
            if self._palette.gather(self._index_screen, buf):
                return
            # A colour not seen yet: learn it from this very frame's gray screen.
            ale.getScreenGrayscale(self._gray_screen)
            if not self._palette.learn(self._index_screen, self._gray_screen):
                self._drop_palette("ALE mapped one palette index to two gray values")
            elif self._palette.gather(self._index_screen, buf):
                return
        else:
            ale.getScreenGrayscale(self._gray_screen)
        preprocess(self._gray_screen, crop=self.crop, size=self._size, interp="nearest", out=buf)

    def _drop_palette(self, why: str) -> None:
        warnings.warn(f"dqnfast AtariPreprocessing: reading ALE's gray screens from now on ({why})", RuntimeWarning,
                      stacklevel=3)
        self._palette = None

    def _check_palette(self) -> None:
        """After a reset: the palette path must agree with ALE's own gray screen (it always has; an
        emulator setting changed under us would show here)."""
        self.ale.getScreenGrayscale(self._gray_screen)
        want = preprocess(self._gray_screen, crop=self.crop, size=self._size, interp="nearest")
        if not np.array_equal(want, self._a):
            self._drop_palette("the learned gray palette disagreed with ALE's gray screen")
            self._a[...] = want

    def _direct_ready(self, recheck: bool = False) -> bool:
        """Whether steps may go straight to ALE: the chain below allows it and the wrappers in it
        have done their one-time work (the env checker's first step, a reset). The chain is walked
        again on ``recheck`` (each reset) and when ``self.env`` was replaced, not on every step
        that goes through the env."""
        if recheck or self._direct_env is not self.env:
            self._direct_env = self.env
            atari = self.env.unwrapped  # (each .unwrapped walks the whole chain)
            # The frameskip its spec gave, remembered: an unpickled env has lost its spec, not its frameskip.
            remembered = self._atari_frameskip if atari is self._atari else None
            self._atari, self._atari_frameskip = atari, _spec_frameskip(atari, remembered)
            self._direct_wrappers = _direct_chain(self.env, self._atari_frameskip)
            # AtariEnv.step's action_set[action], from public calls: a list, so that a bad index
            # raises the same error.
            self._ale_actions = None if self._direct_wrappers is None else _ale_actions(atari)
        chain = self._direct_wrappers
        return chain is not None and all(
            getattr(w, "checked_step", True) and getattr(w, "has_reset", True) for w in chain)

    def step(self, action) -> Tuple[Any, SupportsFloat, bool, bool, Dict[str, Any]]:
        if self._direct and self.env is self._direct_env:
            return self._step_direct(action)
        result = self._step_env(action)
        self._direct = self._direct_ready()
        return result

    def _step_direct(self, action) -> Tuple[Any, SupportsFloat, bool, bool, Dict[str, Any]]:
        """``step`` calling ALE itself: ale_py's AtariEnv.step with frameskip=1, minus the screen
        read on every frame (only the last two of a skip are read). Same rewards, flags, info and
        observations as stepping through the env (tests run both side by side). The frame loop is
        _step_env's, written out again with ALE's calls inline: a helper call per frame would add
        about a microsecond per agent step on the hot path."""
        env = self._atari
        ale = env.ale
        action_idx = self._ale_actions[action]  # indexed as AtariEnv.step indexes (and with its errors)
        total_reward, terminated, truncated = 0.0, False, False
        skip = self.frame_skip
        wrote_last = wrote_second_last = False
        palette, index_screen = self._palette, self._index_screen if self._small else None
        for t in range(skip):
            total_reward += ale.act(action_idx, 1.0)
            if ale.game_over():  # terminated or truncated: one call on all other frames
                terminated = ale.game_over(with_truncation=False)
                truncated = ale.game_truncated()
            if self.terminal_on_life_loss:
                new_lives = ale.lives()
                terminated = terminated or new_lives < self.lives
                self.lives = new_lives
            if terminated or truncated:
                break
            if t >= skip - 2:
                buf = self._spare0 if t == skip - 1 else self._spare1
                if palette is None:
                    self._grab(buf, ale)
                else:
                    ale.getScreen(index_screen)
                    if not palette.gather(index_screen, buf):
                        self._grab(buf, ale)  # a colour to learn (from the same frame, still on screen)
                if t == skip - 1:
                    wrote_last = True
                else:
                    wrote_second_last = True
        self.game_over = terminated
        self._rotate(wrote_last, wrote_second_last)
        return self._obs(), total_reward, terminated, truncated, _ale_info(ale)

    def _step_env(self, action) -> Tuple[Any, SupportsFloat, bool, bool, Dict[str, Any]]:
        total_reward, terminated, truncated, info = 0.0, False, False, {}
        wrote_last = wrote_second_last = False
        for t in range(self.frame_skip):
            _, reward, terminated, truncated, info = self.env.step(action)
            total_reward += reward
            self.game_over = terminated
            if self.terminal_on_life_loss:
                new_lives = self.ale.lives()
                terminated = terminated or new_lives < self.lives
                self.game_over = terminated
                self.lives = new_lives
            if terminated or truncated:
                break
            if t == self.frame_skip - 2:
                self._grab(self._spare1)
                wrote_second_last = True
            elif t == self.frame_skip - 1:
                self._grab(self._spare0)
                wrote_last = True
        self._rotate(wrote_last, wrote_second_last)
        return self._obs(), total_reward, terminated, truncated, info

    def _rotate(self, wrote_last: bool, wrote_second_last: bool) -> None:
        """After a step: the screens it read become the buffers, as gymnasium's would be."""
        if wrote_last:  # a full skip: the two new screens become gymnasium's two buffers
            self._a, self._spare0 = self._spare0, self._a
            if self.frame_skip > 1:
                self._b, self._spare1 = self._spare1, self._b
        elif wrote_second_last:  # ended on the skip's last frame: gymnasium pools its stale first buffer
            np.maximum(self._a, self._b, out=self._spare0)
            self._a, self._spare0 = self._spare0, self._a
            self._b, self._spare1 = self._spare1, self._b
        # else: ended earlier, neither buffer changed and gymnasium repeats its last pooled frame

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None):
        _, reset_info = self.env.reset(seed=seed, options=options)
        noops = self.env.unwrapped.np_random.integers(1, self.noop_max + 1) if self.noop_max > 0 else 0
        direct = self._direct_ready(recheck=True)
        for _ in range(noops):
            if direct:  # what AtariEnv.step(0) does, without reading the screen
                ale = self._atari.ale
                ale.act(self._ale_actions[0], 1.0)
                terminated, truncated = ale.game_over(with_truncation=False), ale.game_truncated()
                step_info = _ale_info(ale)
            else:
                _, _, terminated, truncated, step_info = self.env.step(0)
                direct = self._direct_ready()
            reset_info.update(step_info)
            if terminated or truncated:
                _, reset_info = self.env.reset(seed=seed, options=options)
        self.lives = self.ale.lives()
        self._grab(self._a)
        if self._palette is not None:
            self._check_palette()
        self._b.fill(0)
        self._direct = self._direct_ready()
        return self._obs(), reset_info

    def _obs(self):
        prev = self._b if self.frame_skip > 1 else None  # gymnasium pools only when skipping
        if self._small:  # the buffers hold resized frames already
            obs = np.maximum(self._a, prev) if prev is not None else self._a.copy()
        elif self.grayscale_obs:
            obs = preprocess(self._a, prev=prev, crop=self.crop, size=self._size, interp=self.interp, gray=self.gray)
        else:  # RGB output: each channel is a strided gray view, resized separately
            planes = np.empty((3,) + self._size, np.uint8)
            for c in range(3):
                preprocess(self._a[..., c], prev=None if prev is None else prev[..., c], crop=self.crop,
                           size=self._size, interp=self.interp, out=planes[c])
            obs = np.ascontiguousarray(planes.transpose(1, 2, 0))
        if self.scale_obs:
            obs = np.asarray(obs, dtype=np.float32) / 255.0
        if self.grayscale_obs and self.grayscale_newaxis:
            obs = np.expand_dims(obs, axis=-1)
        return obs


def _is_ale(env: Any) -> bool:
    try:
        from ale_py.env import AtariEnv
    except ImportError:  # pragma: no cover - ale-py is installed with gymnasium's Atari extra
        return False
    return type(env) is AtariEnv


def _spec_frameskip(atari: Any, default: Any) -> Any:
    """The frameskip an env was made with, as its spec says (gymnasium.make records every
    constructor argument there); ``default`` when it has no spec or the spec does not say."""
    spec = getattr(atari, "spec", None)
    kwargs = getattr(spec, "kwargs", None)
    return kwargs["frameskip"] if isinstance(kwargs, dict) and "frameskip" in kwargs else default


def _ale_actions(atari: Any) -> List[Any]:
    """The ALE action of each action index of an AtariEnv (what its step sends to ALE)."""
    import ale_py

    return [ale_py.Action.__members__[name] for name in atari.get_action_meanings()]


def _ale_info(ale: Any) -> Dict[str, Any]:
    """The info dict of ale_py's AtariEnv.step and reset (its _get_info), from ALE's own calls."""
    return {"lives": ale.lives(), "episode_frame_number": ale.getEpisodeFrameNumber(),
            "frame_number": ale.getFrameNumber()}


def _direct_chain(env: gym.Env, frameskip: Any) -> Optional[Tuple[gym.Env, ...]]:
    """The wrappers between AtariPreprocessing and ale_py's AtariEnv when every one of them is
    gymnasium.make's bookkeeping (order enforcing, the env checker) and the env steps one frame at
    a time (``frameskip``, the AtariEnv's, is known to be 1) with discrete actions; None when steps
    must go through the env."""
    from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker

    chain = []
    while isinstance(env, gym.Wrapper):
        if type(env) not in (OrderEnforcing, PassiveEnvChecker):
            return None
        chain.append(env)
        env = env.env
    if not _is_ale(env) or getattr(env, "continuous", True) or type(frameskip) is not int or frameskip != 1:
        return None
    return tuple(chain)


class FireResetEnv(gym.Wrapper):
    """Press FIRE (then action 2) after each reset: games like Breakout wait for it to launch the ball."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ValueError(f"FireResetEnv needs action 1 to be FIRE, got actions {meanings}")

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, _ = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


class EpisodicLifeEnv(gym.Wrapper):
    """A lost life ends the training episode; the game itself is reset only when it is really over.

    ``reset()`` after a lost life continues the same game with one no-op step, so returns and
    lengths counted below this wrapper (``RecordEpisodeStatistics``) are those of the real game.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.was_real_done = True
        self._atari = env.unwrapped  # (each .unwrapped walks the whole chain)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.was_real_done = terminated or truncated
        lives = self._atari.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.was_real_done:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, step_info = self.env.step(0)
            info = {}
            if terminated or truncated:  # the no-op ended the game: keep its episode statistics
                obs, info = self.env.reset(**kwargs)
                info = {**{k: v for k, v in step_info.items() if k == "episode"}, **info}
        self.lives = self._atari.ale.lives()
        return obs, info


class ClipRewardEnv(gym.RewardWrapper):
    """Rewards become their sign (-1, 0, +1), as in the DQN paper; log the unclipped return below it."""

    def step(self, action):  # RewardWrapper.step without its extra call
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, self.reward(reward), terminated, truncated, info

    def reward(self, reward: SupportsFloat) -> float:
        r = float(reward)
        return 1.0 if r > 0 else -1.0 if r < 0 else r  # np.sign's values (0.0 and NaN stay), without numpy


class _SeedFirstReset(gym.Wrapper):
    """Seeds the first reset that is given no seed, so a made env is reproducible as it is."""

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self._seed: Optional[int] = seed
        env.action_space.seed(seed)

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None):
        if seed is None:
            seed = self._seed
        self._seed = None
        return self.env.reset(seed=seed, options=options)


def make_atari_env(
    env_id: str = "ALE/Breakout-v5",
    *,
    num_envs: int = 1,
    seed: Optional[int] = None,
    noop_max: int = 30,
    frame_skip: int = 4,
    screen_size: int = 84,
    crop: Optional[Sequence[int]] = None,
    interp: str = "nearest",
    gray: str = "luma",
    repeat_action_probability: float = 0.0,
    fire_reset: bool = True,
    episodic_life: bool = True,
    clip_rewards: bool = True,
    max_episode_steps: Optional[int] = None,
    vectorization: Optional[str] = None,
    workers: Optional[int] = None,
    infos: str = "all",
):
    """An Atari env for DQN training: one env when ``num_envs == 1`` and no ``workers``, else a
    gymnasium vector env.

    Wrapping, inside out: the ALE env with ``frameskip=1`` and the given
    ``repeat_action_probability`` (sticky actions; ALE v5 would default to 0.25) ->
    :class:`AtariPreprocessing` (no-op reset, skip + max-pool, gray ``screen_size`` square
    frames, no stacking) -> ``TimeLimit(max_episode_steps)`` in agent steps, if given ->
    ``RecordEpisodeStatistics``, so ``info["episode"]["r"]`` / ``["l"]`` are the real game's
    unclipped return and length, reported on the step where the game ends -> :class:`EpisodicLifeEnv`
    -> :class:`FireResetEnv` (games whose action 1 is FIRE) -> :class:`ClipRewardEnv`.

    ``seed``: env i's first reset (when given no seed) and its action space use ``seed + i``.

    Vectors (``vectorization``): ``"processes"`` (the default when ``workers`` is given) steps the
    ``num_envs`` envs on ``workers`` worker processes (``1 <= workers <= num_envs``; None: one per
    env) with frames passed in shared memory: a :class:`dqnfast.vector_env.ProcessVectorEnv` with
    SAME_STEP autoreset, where env i gives exactly what the single env made with ``seed + i``
    gives; ``infos="episode"`` makes it pass only the episode statistics, pickling nothing per step
    (``"all"``, the default, passes every info key as gymnasium's vector envs do). ``"sync"`` (the
    default without ``workers``) and ``"async"`` are gymnasium's ``SyncVectorEnv`` and
    ``AsyncVectorEnv``.
    """
    env_id = atari_env_id(env_id)
    num_envs = positive_int(num_envs, "num_envs")
    if seed is not None:
        seed = positive_int(seed, "seed", minimum=0)
    noop_max = positive_int(noop_max, "noop_max", minimum=0)
    frame_skip = positive_int(frame_skip, "frame_skip")
    screen_size = positive_int(screen_size, "screen_size")
    if max_episode_steps is not None:
        max_episode_steps = positive_int(max_episode_steps, "max_episode_steps")
    repeat_action_probability = number(repeat_action_probability, "repeat_action_probability")
    if not 0.0 <= repeat_action_probability <= 1.0:
        raise ValueError(f"repeat_action_probability must be in [0, 1], got {repeat_action_probability}")
    if vectorization is None:
        vectorization = "sync" if workers is None else "processes"
    if vectorization not in ("sync", "async", "processes"):
        raise ValueError(f"vectorization must be 'sync' or 'async' (gymnasium's vector envs) or 'processes' "
                         f"(dqnfast's worker processes), got {vectorization!r}")
    if workers is not None:
        if vectorization != "processes":
            raise ValueError(f"workers= is for vectorization='processes' (worker processes), not {vectorization!r}")
        workers = positive_int(workers, "workers")
        if workers > num_envs:
            raise ValueError(f"workers must be at most num_envs={num_envs} (each worker steps at least one env), "
                             f"got {workers}")
    if infos not in ("all", "episode"):
        raise ValueError(f"infos must be 'all' or 'episode', got {infos!r}")
    if infos != "all" and vectorization != "processes":
        raise ValueError(f"infos={infos!r} is for vectorization='processes' (worker processes): gymnasium's vector "
                         f"envs pass every info key")
    _check_preprocess_args((210, 160, 3), crop, (screen_size, screen_size), interp, gray)

    def make_one(index: int):
        def thunk():
            # A worker process started by spawn or forkserver (the start method torchrl, for one, sets
            # for the whole program on import) has not registered ALE's ids: register them where the
            # env is made, not only in the parent.
            import ale_py
            gym.register_envs(ale_py)
            env = gym.make(env_id, frameskip=1, repeat_action_probability=float(repeat_action_probability),
                           obs_type="rgb" if gray == "mean" else "grayscale")
            fire = fire_reset and "FIRE" in env.unwrapped.get_action_meanings()[1:2]
            env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size,
                                     crop=crop, interp=interp, gray=gray)
            if max_episode_steps is not None:
                env = gym.wrappers.TimeLimit(env, max_episode_steps)
            env = gym.wrappers.RecordEpisodeStatistics(env)
            if episodic_life:
                env = EpisodicLifeEnv(env)
            if fire:
                env = FireResetEnv(env)
            if clip_rewards:
                env = ClipRewardEnv(env)
            if seed is not None:
                env = _SeedFirstReset(env, seed + index)
            return env

        return thunk

    if num_envs == 1 and vectorization != "processes":
        return make_one(0)()
    thunks = [make_one(i) for i in range(num_envs)]
    if vectorization == "processes":
        from .vector_env import ProcessVectorEnv
        return ProcessVectorEnv(thunks, workers, infos=infos)
    if vectorization == "async":
        return gym.vector.AsyncVectorEnv(thunks)
    return gym.vector.SyncVectorEnv(thunks)
