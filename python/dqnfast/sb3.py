"""A Stable-Baselines3 replay buffer backed by :class:`dqnfast.ReplayBuffer`.

Usage::

    env = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=4), n_stack=4)
    model = DQN("CnnPolicy", env, replay_buffer_class=DqnfastReplayBuffer)

SB3 hands the buffer whole frame stacks (``obs`` and ``next_obs``, each ``n_stack`` frames) and
stores both; this buffer keeps only the newest frame of each step in a dqnfast frame store with
``stack=n_stack`` and rebuilds the stacks at sample time, ``2 * n_stack`` times less pixel memory.
That is exact only for real frame stacks, so ``add`` checks it: ``obs`` must be the stack the frame
store holds for that env, and ``next_obs`` must be ``obs`` shifted by one frame. Anything else
(observations that are not from ``VecFrameStack``, a wrong ``n_stack``) is a ``ValueError`` before
anything is written.

Episodes: the buffer starts one for an env on its first ``add`` and after every ``done``; it also
starts one when ``obs`` is not the continuation of what it holds (SB3's ``learn()`` resets the
envs without a ``done``). ``VecFrameStack`` pads a new episode with zeros, hence ``pad="zero"``.
``infos[i]["TimeLimit.truncated"]`` splits ``done`` into terminated and truncated; ``next_obs`` of a
done env is SB3's ``terminal_observation``, the real final frame, so a truncated transition can be
bootstrapped. ``sample`` returns SB3's ``ReplayBufferSamples`` with ``dones`` = terminated only
(``handle_timeout_termination=True``, SB3's default) or terminated-or-truncated.

This module imports torch and stable_baselines3; ``import dqnfast`` imports neither.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from .batch import Batch
from .replay import ReplayBuffer


class DqnfastReplayBuffer(SB3ReplayBuffer):
    """SB3 ``ReplayBuffer`` interface over a dqnfast frame store (pass it as ``replay_buffer_class``).

    Extra keyword arguments (``replay_buffer_kwargs``):

    - ``n_stack``: frames per observation. Default: every channel is one frame (grayscale Atari).
      Give it when each frame has several channels (RGB: ``n_stack=4`` with 12 channels).
    - ``channels_order``: ``"first"`` or ``"last"``, the axis ``VecFrameStack`` stacked on. Default:
      SB3's own guess for the observation space (smallest axis of an image; ``"last"`` otherwise).
      With ``CnnPolicy`` SB3 transposes channel-last images, so the buffer sees channel-first ones.
    - ``seed``: the frame store's sampling seed. Default: drawn from numpy's global generator, which
      SB3 seeds from the algorithm's ``seed``.
    - ``device_storage``: mirror the frames on ``device`` (:class:`dqnfast.torch_replay.DeviceReplayBuffer`)
      and gather batches there instead of on the host.

    ``buffer_size`` counts frame slots (one per step plus one per episode start), not transitions.
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 device: Union[th.device, str] = "auto", n_envs: int = 1, optimize_memory_usage: bool = False,
                 handle_timeout_termination: bool = True, *, n_stack: Optional[int] = None,
                 channels_order: Optional[str] = None, seed: Optional[int] = None,
                 device_storage: bool = False) -> None:
        if not isinstance(observation_space, spaces.Box) or observation_space.dtype != np.uint8:
            raise TypeError(f"DqnfastReplayBuffer needs a uint8 Box observation space, got {observation_space}")
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"DqnfastReplayBuffer stores one integer action per step: needs a Discrete action "
                            f"space, got {action_space}")
        if optimize_memory_usage:
            raise ValueError("DqnfastReplayBuffer always stores each frame once; leave optimize_memory_usage=False "
                             "(SB3's variant reaches into buffer arrays that this buffer does not have)")
        # BaseBuffer's constructor only, not SB3's ReplayBuffer one: that would allocate the
        # (buffer_size, n_envs, *obs_shape) arrays that this class exists to avoid.
        super(SB3ReplayBuffer, self).__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self._action_dtype = self._maybe_cast_dtype(action_space.dtype)

        shape = tuple(observation_space.shape)
        if channels_order is None:
            channels_order = "first" if is_image_space(observation_space) and is_image_space_channels_first(
                observation_space) else "last"
        if channels_order not in ("first", "last"):
            raise ValueError(f"channels_order must be 'first' or 'last', got {channels_order!r}")
        self.channels_first = channels_order == "first"
        stacked = shape[0] if self.channels_first else shape[-1]
        self.n_stack = stacked if n_stack is None else int(n_stack)
        if self.n_stack <= 0 or stacked % self.n_stack:
            raise ValueError(f"n_stack={n_stack} does not divide the stacked axis ({stacked}) of observations {shape}")
        c = stacked // self.n_stack  # channels per frame
        # One frame in the buffer: (c, *rest) channel-first, (*rest, c) channel-last.
        self.frame_shape = (c, *shape[1:]) if self.channels_first else (*shape[:-1], c)

        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        self._device_storage = device_storage
        self._new_store(max(int(buffer_size), n_envs * (self.n_stack + 1)), seed)  # (the store's minimum capacity)
        self._state = np.empty((n_envs, self.n_stack, *self.frame_shape), np.uint8)  # scratch for stacked()
        self.last_indices = np.empty(0, np.int64)

    # ---- SB3 layout <-> frames ----------------------------------------------------------------------
    def _as_frames(self, obs: np.ndarray) -> np.ndarray:
        """(n, *obs_shape) observations as (n, n_stack, *frame_shape) frames, oldest first (a view)."""
        n = obs.shape[0]
        if self.channels_first:
            return obs.reshape(n, self.n_stack, *self.frame_shape)
        c = self.frame_shape[-1]
        return np.moveaxis(obs.reshape(*obs.shape[:-1], self.n_stack, c), -2, 1)

    def _to_obs(self, states: th.Tensor) -> th.Tensor:
        """(B, n_stack, *frame_shape) stacks back in SB3's (B, *obs_shape) layout."""
        b = states.shape[0]
        if self.channels_first:
            return states.reshape(b, *self.obs_shape)
        return th.movedim(states, 1, -2).reshape(b, *self.obs_shape)

    # ---- add ------------------------------------------------------------------------------------
    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray, reward: np.ndarray, done: np.ndarray,
            infos: List[Dict[str, Any]]) -> None:
        n = self.n_envs
        obs, next_obs = np.asarray(obs), np.asarray(next_obs)
        for name, a in (("obs", obs), ("next_obs", next_obs)):
            if a.shape != (n, *self.obs_shape) or a.dtype != np.uint8:
                raise ValueError(f"{name} must be uint8 of shape {(n, *self.obs_shape)}, got {a.dtype} {a.shape}")
        if len(infos) != n:
            raise ValueError(f"infos must have one dict per env ({n}), got {len(infos)}")
        done = np.asarray(done, bool).reshape(n)
        timeout = np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos]) & done
        actions = np.asarray(action).reshape(n).astype(np.int64)
        rewards = np.asarray(reward, np.float32).reshape(n)
        cur, nxt = self._as_frames(obs), self._as_frames(next_obs)

        # All checks before any write. A frame stack's next_obs is obs shifted by one frame.
        shifted = (nxt[:, :-1] == cur[:, 1:]).reshape(n, -1).all(axis=1)
        if not shifted.all():
            raise ValueError(f"env {int(np.argmin(shifted))}: next_obs is not obs shifted by one frame; "
                             f"DqnfastReplayBuffer needs VecFrameStack observations with n_stack={self.n_stack} "
                             f"stacked on the {'first' if self.channels_first else 'last'} axis")
        # obs must be the state the frame store holds for each env; where it is not, a new episode began
        # (VecFrameStack's reset observation: zeros, then the episode's first frame).
        restart = ~self._active
        for e in np.flatnonzero(self._active):
            self.store.stacked(int(e), out=self._state[e])
            restart[e] = not np.array_equal(self._state[e], cur[e])
        padded = ~cur[:, :-1].reshape(n, -1).any(axis=1)
        if (restart & ~padded).any():
            e = int(np.argmax(restart & ~padded))
            raise ValueError(f"env {e}: obs starts an episode in the buffer but its older frames are not zero "
                             "padding; the buffer can only start episodes at VecFrameStack's reset observation "
                             "(reset the env after attaching a new buffer)")

        if restart.any():
            envs = np.flatnonzero(restart)
            self.store.start_episodes(cur[envs, -1], envs)  # abandons any open episode of those envs
        self.store.add_batch(actions, rewards, nxt[:, -1], done & ~timeout, timeout)
        self._active = ~done
        # add_batch stores row i (env i) at write number writes - n + i: the ids of these transitions.
        self.last_indices = np.arange(self.store.writes - n, self.store.writes, dtype=np.int64)
        self.pos = self.store.writes % self.store.capacity
        self.full = self.store.writes >= self.store.capacity

    # ---- sample ---------------------------------------------------------------------------------
    def size(self) -> int:
        return len(self.store)

    def sample(self, batch_size: int, env: Optional[Any] = None) -> ReplayBufferSamples:
        """``batch_size`` transitions, uniform with replacement (``env``: a VecNormalize to apply)."""
        return self._to_samples(self.store.sample(batch_size), env)

    def _get_samples(self, batch_inds: np.ndarray, env: Optional[Any] = None) -> ReplayBufferSamples:
        """The transitions with these dqnfast ids (``last_indices`` of an ``add``); IndexError once gone."""
        host = self.store.buffer if self._device_storage else self.store
        return self._to_samples(host.gather(np.asarray(batch_inds, np.int64)), env)

    def _to_samples(self, b: Batch, env: Optional[Any]) -> ReplayBufferSamples:
        t = b._replace(**{k: th.from_numpy(v) for k, v in b._asdict().items() if isinstance(v, np.ndarray)})  # zero-copy
        obs_s, action, reward, next_s, terminated, truncated = (t.obs, t.action, t.reward, t.next_obs, t.terminated,
                                                                t.truncated)
        done = terminated if self.handle_timeout_termination else terminated | truncated
        obs, next_obs = self._to_obs(obs_s), self._to_obs(next_s)
        reward = reward.reshape(-1, 1)
        if env is not None:  # VecNormalize works on numpy arrays
            obs = th.as_tensor(self._normalize_obs(obs.cpu().numpy(), env))
            next_obs = th.as_tensor(self._normalize_obs(next_obs.cpu().numpy(), env))
            reward = th.as_tensor(self._normalize_reward(reward.cpu().numpy(), env))
        dev = self.device
        return ReplayBufferSamples(
            observations=obs.to(dev),
            actions=action.reshape(-1, 1).to(dev, getattr(th, np.dtype(self._action_dtype).name)),
            next_observations=next_obs.to(dev),
            dones=done.reshape(-1, 1).to(dev, th.float32),
            rewards=reward.to(dev),
        )

    def reset(self) -> None:
        """Empty the buffer (a new frame store with the same settings)."""
        super().reset()
        self._new_store(self.store.capacity, self.store.seed)

    def _new_store(self, capacity: int, seed: int) -> None:
        rb = ReplayBuffer(capacity, self.frame_shape, stack=self.n_stack, num_envs=self.n_envs, seed=seed, pad="zero")
        if self._device_storage:
            from .torch_replay import DeviceReplayBuffer  # only then: it is the one module here that needs a device
            self.store: Any = DeviceReplayBuffer(buffer=rb, device=self.device)
        else:
            self.store = rb
        self._active = np.zeros(self.n_envs, bool)  # envs with an episode open in the store
