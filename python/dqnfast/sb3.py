"""A Stable-Baselines3 replay buffer backed by :class:`dqnfast.ReplayBuffer`.

Usage, inside SB3::

    env = VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=4), n_stack=4)
    model = DQN("CnnPolicy", env, replay_buffer_class=DqnfastReplayBuffer)

or in a CleanRL-style script with gymnasium 1.x vector envs, with SB3's calling convention::

    rb = DqnfastReplayBuffer(buffer_size, envs.single_observation_space, envs.single_action_space, device,
                             n_envs=envs.num_envs, optimize_memory_usage=True, handle_timeout_termination=False)
    rb.add(obs, real_next_obs, actions, rewards, terminations, infos)

SB3 hands the buffer whole frame stacks (``obs`` and ``next_obs``, each ``n_stack`` frames) and
stores both; this buffer keeps only the newest frame of each step in a dqnfast frame store with
``stack=n_stack`` and rebuilds the stacks at sample time. That is exact only for real frame stacks,
so ``add`` checks it: ``obs`` must be the stack the frame store holds for that env (or the reset
observation of a new episode), and ``next_obs`` must be ``obs`` shifted by one frame. Anything else
is a ``ValueError`` before anything is written.

The conventions it accepts, each with exact semantics:

- ``infos``: SB3's list of dicts (``"TimeLimit.truncated"``, ``"terminal_observation"``) or
  gymnasium's dict of arrays (``"final_obs"``/``"_final_obs"`` in autoreset mode SAME_STEP; gymnasium
  0.29's ``"final_observation"`` too). A done env's real final observation is taken from ``infos``
  when it is there, so ``next_obs`` may hold the reset observation for it.
- Autoreset: SAME_STEP (SB3 VecEnvs; gymnasium ``AutoresetMode.SAME_STEP``): the step after a done
  starts with the reset observation. NEXT_STEP (gymnasium's default): the step after a done is a
  "reset step" whose ``obs`` is the final observation and ``next_obs`` the reset one; its action was
  ignored and its reward is 0, so it is not a transition and is not stored: the buffer starts the
  new episode from its ``next_obs``. Scripts that skip that add themselves work too.
- Padding of a new episode's older frames: zeros (SB3 ``VecFrameStack``, ``FrameStackObservation(
  padding_type="zero")``) or the first frame repeated (``FrameStackObservation``'s default
  ``padding_type="reset"``), detected from the first ``add`` or given as ``pad=``.

This module imports torch and stable_baselines3; ``import dqnfast`` imports neither.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from collections.abc import Mapping
from typing import Any, Dict, List, NamedTuple, Optional, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from ._validate import number, positive_int
from .batch import Batch
from .feed import NEXT_STEP, SAME_STEP, autoreset_name
from .replay import ReplayBuffer

def _autoreset_arg(mode: Any) -> Optional[str]:
    """None, "same_step"/"next_step" (any case, with or without "_"), or gymnasium's AutoresetMode."""
    if mode is None:
        return None
    name = autoreset_name(mode)
    if name is None:
        raise ValueError(f"autoreset_mode must be 'same_step' or 'next_step' (or gymnasium's AutoresetMode), "
                         f"got {mode!r}")
    return name


_MAX_REDRAWS = 1000  # rounds of redrawing samples that fell before the window: each keeps about half or more
_REDRAW_ERROR = ("cannot sample: the last buffer_size rows hold no stored transition (only gymnasium NEXT_STEP "
                 "reset steps, which are not transitions)")


def _check_n_steps(n_steps: Any, gamma: Any) -> None:
    """SB3's n-step keywords: only n_steps=1 (the default; then gamma is unused).

    dqnfast's native n-step returns (``dqnfast.ReplayBuffer(n_step=, gamma=)``) differ from SB3's
    ``NStepReplayBuffer`` in which transitions are sampled: SB3 samples the newest n - 1 steps of an
    open episode too, with a window cut short at the newest row (bootstrapping from a state fewer
    than n steps on, with discount gamma^m); the store samples a transition only once its n steps
    are written. So SB3's n-step semantics cannot be matched exactly here, and n_steps > 1 raises.
    """
    if positive_int(n_steps, "n_steps") > 1:
        raise ValueError(
            f"DqnfastReplayBuffer does not support n_steps={n_steps} (n-step returns): SB3's NStepReplayBuffer "
            "also samples the newest n_steps - 1 steps of each open episode with a window cut short at the "
            "newest row, and dqnfast's native n-step returns wait for all n steps, so the two differ. Use "
            "n_steps=1 here, or SB3's own NStepReplayBuffer (DQN(..., n_steps=...) without replay_buffer_class), "
            "or dqnfast.ReplayBuffer(n_step=..., gamma=...) directly in your own training loop")
    if gamma is not None:
        number(gamma, "gamma")


class _StepEnds(NamedTuple):
    """What one ``add``'s infos say about episode ends, per env."""
    terminated: np.ndarray  # bool (n,)
    truncated: np.ndarray  # bool (n,)
    final_obs: Dict[int, np.ndarray]  # env -> its real final observation, where infos hold one
    convention: str  # "sb3" (list of dicts) or "gymnasium" (dict of arrays)
    final_key: str  # where infos hold the final observations


def _read_infos(infos: Any, n: int, done: np.ndarray, truncated: Optional[np.ndarray]) -> _StepEnds:
    """Episode ends from ``done``, ``infos`` and an optional ``truncated`` array, in either convention.

    SB3: ``done`` covers both kinds of end and ``"TimeLimit.truncated"`` marks the truncations.
    gymnasium (dict of arrays): ``done`` is what the script passes (CleanRL passes ``terminations``);
    an env with a ``final_obs`` whose ``done`` is False ended by truncation."""
    extra = np.zeros(n, bool) if truncated is None else np.asarray(truncated, bool).reshape(n)
    if isinstance(infos, Mapping):
        key = next((k for k in ("final_obs", "final_observation") if k in infos), None)
        final: Dict[int, np.ndarray] = {}
        if key is not None:
            values = infos[key]
            mask = infos.get("_" + key)
            mask = (np.array([v is not None for v in values]) if mask is None else np.asarray(mask, bool)).reshape(-1)
            if mask.shape != (n,) or len(values) != n:
                raise ValueError(f"infos[{key!r}] must have one entry per env ({n}), got {len(values)}")
            final = {int(e): np.asarray(values[e]) for e in np.flatnonzero(mask)}
        ended = np.zeros(n, bool)
        ended[list(final)] = True
        trunc = (ended | extra) & ~done
        return _StepEnds(done.copy(), trunc, final, "gymnasium", f"infos[{key!r}]")
    if isinstance(infos, (list, tuple)):
        if truncated is not None:
            raise ValueError("with SB3's list infos, truncations come as done plus infos[i]['TimeLimit.truncated']; "
                             "truncated= is for gymnasium's dict infos")
        if len(infos) != n or not all(isinstance(i, Mapping) for i in infos):
            raise ValueError(f"infos must have one dict per env ({n}) (SB3's VecEnv convention) or be gymnasium's "
                             f"dict of arrays, got a {type(infos).__name__} of {len(infos)} "
                             f"({', '.join(sorted({type(i).__name__ for i in infos}))})")
        timeout = np.array([bool(i.get("TimeLimit.truncated", False)) for i in infos]) & done
        final = {e: np.asarray(infos[e]["terminal_observation"]) for e in np.flatnonzero(done)
                 if "terminal_observation" in infos[e]}
        return _StepEnds(done & ~timeout, timeout, final, "sb3", "infos[i]['terminal_observation']")
    raise TypeError(f"infos must be a list of dicts (SB3 VecEnv) or a dict of arrays (gymnasium vector env), "
                    f"got {type(infos).__name__}")


class _EndAllEpisodes:
    """Stands in for SB3's ``dones`` array in the one place SB3 writes it from outside a buffer:
    ``OffPolicyAlgorithm._setup_learn`` with ``optimize_memory_usage=True`` marks the last stored step
    done before ``learn()`` resets the envs. Here that ends every open episode, so the next ``add``
    must start each env at a reset observation (which ``learn()``'s reset gives)."""

    def __init__(self, end_all) -> None:
        self._end_all = end_all

    def __setitem__(self, index: Any, value: Any) -> None:
        if np.any(value):
            self._end_all()


class DqnfastReplayBuffer(SB3ReplayBuffer):
    """SB3 ``ReplayBuffer`` interface over a dqnfast frame store (pass it as ``replay_buffer_class``).

    Extra keyword arguments (``replay_buffer_kwargs``):

    - ``n_stack``: frames per observation. Default: every channel is one frame (grayscale Atari).
      Give it when each frame has several channels (RGB: ``n_stack=4`` with 12 channels).
    - ``channels_order``: ``"first"`` or ``"last"``, the axis the frames are stacked on. Default:
      SB3's own guess for the observation space (smallest axis of an image; ``"last"`` otherwise).
      With ``CnnPolicy`` SB3 transposes channel-last images, so the buffer sees channel-first ones;
      gymnasium's ``FrameStackObservation`` stacks on a new first axis.
    - ``pad``: ``"zero"`` or ``"first"``, how a new episode's older frames are padded. Default: read
      off the first ``add`` (its observations are reset observations); an ``add`` whose stacks fit
      both (all-zero frames) and no other evidence raises and asks for ``pad``.
    - ``autoreset_mode``: ``"same_step"`` or ``"next_step"`` (or gymnasium's ``AutoresetMode``).
      Default: SB3's list infos mean SAME_STEP; with gymnasium's dict infos the mode is read off the
      first episode end (SAME_STEP puts ``final_obs`` in infos, NEXT_STEP does not).
    - ``seed``: the frame store's sampling seed. Default: drawn from numpy's global generator, which
      SB3 seeds from the algorithm's ``seed``.
    - ``device_storage``: mirror the frames on ``device`` (:class:`dqnfast.torch_replay.DeviceReplayBuffer`)
      and gather batches there instead of on the host.

    ``optimize_memory_usage`` is accepted and changes nothing: this buffer always stores each frame
    once, and, unlike SB3's memory-optimized variant, keeps the real final observation of every
    episode, so it also works with ``handle_timeout_termination=True``.

    ``buffer_size``, ``pos``, ``full`` and ``size()`` mean what they mean in SB3: ``buffer_size`` is
    ``max(buffer_size // n_envs, 1)`` rows (one row per ``add``: one transition per env), ``pos`` the
    rows written modulo ``buffer_size``, ``full`` true once ``buffer_size`` rows have been written, and
    ``size()`` is ``buffer_size`` when full, else ``pos``. ``sample`` draws uniformly from the
    transitions of the last ``size()`` rows, as SB3's buffer does.

    The frame store behind it has ``2 * n_envs * (buffer_size + n_stack)`` frame slots. A row takes
    ``n_envs`` slots for its steps plus one per episode that starts in it, so at most ``2 * n_envs``
    (an episode of one step takes two slots), and the oldest row's stacks reach back at most
    ``n_stack`` rows. That margin is the worst case, so the last ``buffer_size`` rows always fit, even
    with one-step episodes; any less and short episodes would silently shrink the buffer below
    ``size()``. The price is frame memory: 2 slots per transition, where Atari's long episodes use
    about 1. Older rows the store still holds are never sampled.

    Pickling (``save_replay_buffer``, ``copy.deepcopy``) carries a snapshot of the frame store in the
    native format (:meth:`dqnfast.ReplayBuffer.save`) with everything the adapter tracks, so a loaded
    copy continues exactly: the same samples, the same checks on the next ``add``. The whole state,
    snapshot included, is computed before pickle writes anything. SB3's ``save_replay_buffer`` opens
    (creates or truncates) its file before pickling, though, so a failed save leaves an empty file
    there; :func:`save_replay_buffer` in this module writes a temporary file and renames it, so the
    path holds either the complete pickle or what it held before. With ``device_storage=True`` the
    host store is pickled and mirrored again on load (SB3's ``load_replay_buffer`` then sets
    ``device``, which moves the mirror to the model's device).

    ``n_steps`` (SB3's n-step keyword, from ``replay_buffer_kwargs``) must be 1: see ``_check_n_steps``.
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 device: Union[th.device, str] = "auto", n_envs: int = 1, optimize_memory_usage: bool = False,
                 handle_timeout_termination: bool = True, *, n_stack: Optional[int] = None,
                 channels_order: Optional[str] = None, pad: Optional[str] = None, autoreset_mode: Any = None,
                 seed: Optional[int] = None, device_storage: bool = False, n_steps: int = 1,
                 gamma: Optional[float] = None) -> None:
        if not isinstance(observation_space, spaces.Box) or observation_space.dtype != np.uint8:
            hint = "" if not isinstance(observation_space, spaces.Box) else (
                " (SB3's VecNormalize(norm_obs=True) turns image observations into a float32 Box: use "
                "VecNormalize(norm_obs=False), which still normalizes rewards)")
            raise TypeError(f"DqnfastReplayBuffer needs a uint8 Box observation space, got {observation_space}{hint}")
        _check_n_steps(n_steps, gamma)
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"DqnfastReplayBuffer stores one integer action per step: needs a Discrete action "
                            f"space, got {action_space}")
        if pad not in (None, "zero", "first"):
            raise ValueError(f"pad must be 'zero' (VecFrameStack) or 'first' (FrameStackObservation's "
                             f"padding_type='reset'), or None to detect it, got {pad!r}")
        n_envs = positive_int(n_envs, "n_envs")
        buffer_size = positive_int(buffer_size, "buffer_size")
        self._device_storage = bool(device_storage)  # (before BaseBuffer sets `device`, whose setter reads it)
        # BaseBuffer's constructor only, not SB3's ReplayBuffer one: that would allocate the
        # (buffer_size, n_envs, *obs_shape) arrays that this class exists to avoid.
        super(SB3ReplayBuffer, self).__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.optimize_memory_usage = bool(optimize_memory_usage)  # (SB3's algorithms read it back)
        self.handle_timeout_termination = handle_timeout_termination
        self.autoreset_mode = _autoreset_arg(autoreset_mode)
        self._action_dtype = self._maybe_cast_dtype(action_space.dtype)
        self.dones = _EndAllEpisodes(self._end_all_episodes)

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
        # With one frame per state there is no padding to tell apart.
        self.pad: Optional[str] = "zero" if self.n_stack == 1 and pad is None else pad

        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        self.buffer_size = max(buffer_size // n_envs, 1)  # rows, as SB3's ReplayBuffer counts them
        # Worst case per row: n_envs steps and n_envs episode starts; plus the n_stack rows before the
        # oldest one that its stacks may reach back into (see the class docstring).
        self._new_store(2 * n_envs * (self.buffer_size + self.n_stack), seed)
        # The store's write count when each row's add began: a row's transitions have ids >= it, so the
        # oldest row's entry is the lowest id that sample() may return once the buffer is full.
        self._row_first = np.zeros(self.buffer_size, np.int64)
        self._state = np.empty((n_envs, self.n_stack, *self.frame_shape), np.uint8)  # scratch for stacked()
        self.last_indices = np.full(n_envs, -1, np.int64)
        self._warned_unseen_end = False
        self._convention: Optional[str] = None  # "sb3" or "gymnasium", from the first add

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

    # ---- padding ------------------------------------------------------------------------------------
    @staticmethod
    def _padded_as(frames: np.ndarray, pad: str) -> np.ndarray:
        """(n, n_stack, ...) stacks -> bool (n,): is each a reset observation under padding ``pad``?"""
        older, newest = frames[:, :-1], frames[:, -1:]
        n = frames.shape[0]
        if pad == "zero":
            return ~older.reshape(n, -1).any(axis=1)
        return (older == newest).reshape(n, -1).all(axis=1)

    def _detect_pad(self, frames: np.ndarray) -> Optional[str]:
        """The padding that the first add's reset observations (one per env) show, exactly: None when some
        env's observation is no reset observation (the caller's check then names it)."""
        zero, first = self._padded_as(frames, "zero"), self._padded_as(frames, "first")
        only_zero, only_first = np.flatnonzero(zero & ~first), np.flatnonzero(first & ~zero)
        if len(only_zero) and len(only_first):
            raise ValueError(f"env {only_zero[0]}'s first observation is zero-padded but env {only_first[0]}'s "
                             "repeats its first frame: all envs must pad new episodes the same way")
        if len(only_zero) or len(only_first):
            return "zero" if len(only_zero) else "first"
        if (zero & first).all():
            raise ValueError("cannot tell how new episodes are padded: every first observation is all zeros, which "
                             "fits both zero padding (SB3 VecFrameStack) and first-frame padding (gymnasium "
                             "FrameStackObservation); pass pad='zero' or pad='first'")
        return None

    @staticmethod
    def _padding_error(e: int, what: str, pad: Optional[str]) -> ValueError:
        kind = {"zero": "are not zero padding", "first": "are not copies of its newest frame (first-frame padding)",
                None: "are neither zero padding nor copies of its newest frame"}[pad]
        return ValueError(f"env {e}: {what} starts an episode in the buffer but its older frames {kind}; the buffer "
                          "can only start episodes at a reset observation (reset the envs after attaching a new "
                          "buffer; pass pad= if the padding was detected wrong)")

    # ---- add ------------------------------------------------------------------------------------
    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray, reward: np.ndarray, done: np.ndarray,
            infos: Union[List[Dict[str, Any]], Mapping[str, Any]], *,
            truncated: Optional[np.ndarray] = None) -> None:
        """Store one vector step. ``done`` as the script has it (SB3: terminated or truncated; CleanRL with
        gymnasium: ``terminations``). ``truncated`` (keyword, not in SB3's signature) tells the buffer
        about truncations that neither ``done`` nor ``infos`` show (gymnasium NEXT_STEP mode)."""
        n = self.n_envs
        obs, next_obs = np.asarray(obs), np.asarray(next_obs)
        for name, a in (("obs", obs), ("next_obs", next_obs)):
            if a.shape != (n, *self.obs_shape) or a.dtype != np.uint8:
                raise ValueError(f"{name} must be uint8 of shape {(n, *self.obs_shape)}, got {a.dtype} {a.shape}")
        done = np.asarray(done, bool).reshape(n)
        ends = _read_infos(infos, n, done, truncated)
        if self._convention not in (None, ends.convention):
            raise ValueError(f"infos came as {self._convention} infos before and as {ends.convention} infos now; "
                             "one buffer takes one convention")
        actions = np.asarray(action).reshape(n).astype(np.int64)
        rewards = np.asarray(reward, np.float32).reshape(n)
        if ends.final_obs:  # the real final observations, where infos have them
            next_obs = next_obs.copy()
            for e, o in ends.final_obs.items():
                if o.dtype != np.uint8:  # (assigned into next_obs, it would be cast silently)
                    raise ValueError(
                        f"env {e}: the final observation in {ends.final_key} is {o.dtype}, not uint8; this buffer "
                        "stores uint8 frames. SB3's VecNormalize(norm_obs=True) normalizes image observations too "
                        "and puts the normalized (float) final observation there: use VecNormalize(norm_obs=False) "
                        "(rewards are still normalized with norm_reward=True), or pass uint8 observations")
                if o.shape != self.obs_shape:
                    raise ValueError(f"env {e}: final observation in infos has shape {o.shape}, not {self.obs_shape}")
                next_obs[e] = o
        mode = self._autoreset_mode_after(ends)
        cur, nxt = self._as_frames(obs), self._as_frames(next_obs)
        # Before the first write every env starts an episode with this add: its obs show the padding.
        pad = self.pad or self._detect_pad(cur)

        # All checks before any write. Per env: store the transition or not, and start an episode first
        # from obs ("restart") or from next_obs (a NEXT_STEP reset step, whose transition is not stored).
        shifted = (nxt[:, :-1] == cur[:, 1:]).reshape(n, -1).all(axis=1)  # next_obs is obs shifted by one frame
        held = np.zeros(n, bool)  # obs is the stack the store holds for the env
        for e in range(n):
            if self._open[e] or self._ended[e]:  # (after an end the store still holds the final stack)
                self.store.stacked(e, out=self._state[e])
                held[e] = np.array_equal(self._state[e], cur[e])
        restart, reset_step = np.zeros(n, bool), np.zeros(n, bool)
        unseen_end = False
        # Most steps continue every env's episode; only the other envs need a look at padding.
        odd_mask = ~(self._open & ~self._ended & held & shifted)
        odd = np.flatnonzero(odd_mask) if odd_mask.any() else ()
        cur_reset, nxt_reset = np.zeros(n, bool), np.zeros(n, bool)  # is a reset observation (for odd envs)
        if len(odd):
            cur_reset[odd] = self._padded_as(cur[odd], pad or "zero")
            nxt_reset[odd] = self._padded_as(nxt[odd], pad or "zero")
        for e in odd:
            if self._ended[e] and mode == NEXT_STEP:
                # The step after an episode end: a reset step (obs = the final observation), or the script
                # skipped that add and this is the new episode's first step (obs = the reset observation).
                reset_step[e] = held[e] and (not shifted[e] or not cur_reset[e])
                if held[e] and shifted[e] and cur_reset[e] and nxt_reset[e]:
                    raise ValueError(f"env {e}: after its episode end, obs is both the final observation and a reset "
                                     "observation, and next_obs fits both a reset step and a first step: cannot tell "
                                     "whether this is gymnasium's NEXT_STEP reset step; pass it or skip it always")
                restart[e] = not reset_step[e]
            elif self._ended[e] or not self._open[e] or not held[e]:
                restart[e] = True  # SAME_STEP after a done, a first add, or envs reset without a done
            elif not shifted[e] and mode != SAME_STEP and ends.convention == "gymnasium" and nxt_reset[e]:
                # NEXT_STEP reset step after an end the buffer was not told of (a truncation with done =
                # terminations): next_obs starts a new episode, not continuing obs.
                reset_step[e], unseen_end = True, True
            if restart[e] and not cur_reset[e]:
                raise self._padding_error(e, "obs", pad)
            if reset_step[e] and not nxt_reset[e]:
                raise self._padding_error(e, "next_obs of gymnasium's NEXT_STEP reset step", pad)
            if not reset_step[e] and not shifted[e]:
                raise ValueError(f"env {e}: next_obs is not obs shifted by one frame; DqnfastReplayBuffer needs "
                                 f"frame-stacked observations with n_stack={self.n_stack} stacked on the "
                                 f"{'first' if self.channels_first else 'last'} axis (and for a done env, its final "
                                 f"observation in next_obs or in infos)")
        if unseen_end:
            mode = NEXT_STEP
            if not self._warned_unseen_end:
                self._warned_unseen_end = True
                warnings.warn("DqnfastReplayBuffer: a NEXT_STEP reset step followed an episode end that neither done "
                              "nor infos showed (a truncation?); it was recognised because next_obs does not continue "
                              "obs. Pass truncated=truncations to add() (or skip the add after an episode end) so "
                              "that this does not depend on the frames' content.", stacklevel=2)

        # Checks passed: what this add showed about the conventions holds from now on.
        if self.pad is None:
            self.pad = pad
            if pad == "first":  # the store is still empty: make it again with the right padding
                self._new_store(self.store.capacity, self.store.seed)
        self.autoreset_mode = mode
        if len(odd):
            starts = np.flatnonzero(restart | reset_step)
            frames = np.stack([(nxt if reset_step[e] else cur)[e, -1] for e in starts])
            self.store.start_episodes(frames, starts)  # abandons any open episode of those envs
        self.last_indices = np.full(n, -1, np.int64)
        self._row_first[self.pos] = self.store.writes
        if not reset_step.any():
            self.store.add_batch(actions, rewards, nxt[:, -1], ends.terminated, ends.truncated)
            self.last_indices[:] = np.arange(self.store.writes - n, self.store.writes)
        elif not reset_step.all():
            go = np.flatnonzero(~reset_step)  # envs whose transition is stored
            self.store.add_batch(actions[go], rewards[go], nxt[go, -1], ends.terminated[go], ends.truncated[go], go)
            self.last_indices[go] = np.arange(self.store.writes - len(go), self.store.writes)
        # (add_batch stores row k at write number writes - rows + k: the ids of these transitions.)
        self._convention = ends.convention
        self._ended = ends.terminated | ends.truncated
        self._open = ~self._ended
        self.pos += 1  # one row per add, as in SB3 (a row of NEXT_STEP reset steps too: SB3 stores them)
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def _autoreset_mode_after(self, ends: _StepEnds) -> Optional[str]:
        """The autoreset mode: the known one, or what this add shows; a contradiction raises."""
        if ends.convention == "sb3":
            seen: Optional[str] = SAME_STEP  # SB3's VecEnvs reset a done env within the step
        else:
            ended = np.flatnonzero(ends.terminated | ends.truncated)
            with_final = [e for e in ended if e in ends.final_obs]
            seen = None if not len(ended) else SAME_STEP if len(with_final) == len(ended) else \
                NEXT_STEP if not with_final else "both"
            if seen == "both":
                raise ValueError("infos have final_obs for some ended envs and not for others: cannot tell the "
                                 "autoreset mode")
        if seen is not None and self.autoreset_mode not in (None, seen):
            raise ValueError(f"autoreset_mode is {self.autoreset_mode} but this step looks like {seen} "
                             "(SAME_STEP: an ended env's final observation is in infos; NEXT_STEP: it is not)")
        return self.autoreset_mode or seen

    def _end_all_episodes(self) -> None:
        self._open[:] = False
        self._ended[:] = False

    # ---- sample ---------------------------------------------------------------------------------
    def sample(self, batch_size: int, env: Optional[Any] = None) -> ReplayBufferSamples:
        """``batch_size`` transitions of the last ``size()`` rows, uniform with replacement (``env``: a
        VecNormalize to apply). The draws come from the frame store's own random stream."""
        n = positive_int(batch_size, "batch_size")
        lo = int(self._row_first[self.pos]) if self.full else 0  # the oldest row's first id
        if lo <= self.store.writes - self.store.capacity:  # the store holds nothing older: every draw is in
            return self._to_samples(self.store.sample(n), env)
        # The store still holds rows older than the window: draw again where a draw landed there. Each
        # accepted draw is uniform over the window (rejection sampling); with long episodes about half of
        # the store is older rows. Host draws take frame-slot indices only, so a rejected draw copies no frame.
        if not self._device_storage:
            return self._to_samples(self.store.gather(self._draw_ids(n, lo)), env)
        b = self.store.sample(n)
        for _ in range(_MAX_REDRAWS):
            old = th.nonzero(b.index < lo).flatten()
            if not len(old):
                return self._to_samples(b, env)
            more = self.store.sample(len(old))
            for field, mf in zip(b, more):
                field[old] = mf
        raise RuntimeError(_REDRAW_ERROR)

    def _draw_ids(self, n: int, lo: int) -> np.ndarray:
        """n transition ids drawn by the store (as ``sample`` draws them), each redrawn while it is < lo."""
        st = self.n_stack
        ids = np.empty(n, np.int64)
        todo = np.arange(n)
        for _ in range(_MAX_REDRAWS):
            k = len(todo)
            slots = np.empty((2, k, st), np.int64)
            meta = Batch(obs=None, action=np.empty(k, np.int64), reward=np.empty(k, np.float32), next_obs=None,
                         terminated=np.empty(k, bool), truncated=np.empty(k, bool), index=np.empty(k, np.int64),
                         discount=np.empty(k, np.float32))
            self.store.sample_slots_into(k, slots[0], slots[1], meta)
            ids[todo] = meta.index
            todo = todo[meta.index < lo]
            if not len(todo):
                return ids
        raise RuntimeError(_REDRAW_ERROR)

    def _get_samples(self, batch_inds: np.ndarray, env: Optional[Any] = None) -> ReplayBufferSamples:
        """The transitions with these dqnfast ids (``last_indices`` of an ``add``); IndexError once gone."""
        host = self.store.buffer if self._device_storage else self.store
        return self._to_samples(host.gather(np.asarray(batch_inds, np.int64)), env)

    def _to_samples(self, b: Batch, env: Optional[Any]) -> ReplayBufferSamples:
        t = b._replace(**{k: th.from_numpy(v) for k, v in b._asdict().items() if isinstance(v, np.ndarray)})  # zero-copy
        obs_s, action, reward, next_s, terminated, truncated = (t.obs, t.action, t.reward, t.next_obs, t.terminated,
                                                                t.truncated)
        # dones = done as add() got it, less SB3's TimeLimit truncations with handle_timeout_termination.
        # With gymnasium's infos, truncations that the buffer found in infos (or in truncated=) were never
        # in done (CleanRL passes terminations), so they stay out of dones either way.
        done = terminated if self.handle_timeout_termination or self._convention == "gymnasium" else \
            terminated | truncated
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
        self._row_first[:] = 0

    def _new_store(self, capacity: int, seed: int) -> None:
        rb = ReplayBuffer(capacity, self.frame_shape, stack=self.n_stack, num_envs=self.n_envs, seed=seed,
                          pad=self.pad or "zero")  # (remade with "first" if the first add detects that)
        self._use_store(rb, self.device)
        self._open = np.zeros(self.n_envs, bool)  # envs with an episode open in the store
        self._ended = np.zeros(self.n_envs, bool)  # envs whose episode the last add ended

    def _use_store(self, rb: ReplayBuffer, device: th.device) -> None:
        """Make ``rb`` the store: itself, or with device_storage a mirror of it on ``device``."""
        if self._device_storage:
            from .torch_replay import DeviceReplayBuffer  # only then: it is the one module here that needs a device
            self.store: Any = DeviceReplayBuffer(buffer=rb, device=device)
        else:
            self.store = rb

    # ---- device -------------------------------------------------------------------------------------
    @property
    def device(self) -> th.device:
        return self._device

    @device.setter
    def device(self, device: Union[th.device, str]) -> None:
        # SB3's load_replay_buffer sets the loaded buffer's device to the model's: a device mirror follows.
        self._device = th.device(device)
        store = self.__dict__.get("store")
        if self._device_storage and store is not None and store.device != self._device:
            self._use_store(store.buffer, self._device)

    # ---- pickling (SB3's save_replay_buffer / load_replay_buffer, copy.deepcopy) ----------------------
    def __getstate__(self) -> Dict[str, Any]:
        """Everything the adapter tracks, with the frame store as the bytes of a native snapshot.

        The snapshot is complete before this returns, so an error (disk full, no temporary directory)
        raises before pickle writes anything. It costs one copy of the store in host memory."""
        state = {k: v for k, v in self.__dict__.items() if k not in _NOT_PICKLED}
        host = self.store.buffer if self._device_storage else self.store
        with tempfile.TemporaryDirectory(prefix="dqnfast-sb3-") as tmp:
            path = os.path.join(tmp, "store.dqnfast")
            host.save(path, durable=False)  # (a scratch file: no need to reach the disk)
            with open(path, "rb") as f:
                state["_store_snapshot"] = f.read()
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        snapshot = state.pop("_store_snapshot")
        self.__dict__.update(state)
        with tempfile.TemporaryDirectory(prefix="dqnfast-sb3-") as tmp:
            path = os.path.join(tmp, "store.dqnfast")
            with open(path, "wb") as f:
                f.write(snapshot)
            rb = ReplayBuffer.load(path)  # (checksummed: a damaged pickle raises ValueError here)
        device = self._device
        if device.type == "cuda" and not th.cuda.is_available():
            # A buffer saved on a GPU machine, loaded on one without: mirror on the host for now;
            # SB3's load_replay_buffer sets the model's device right after this.
            device = th.device("cpu")
        self._use_store(rb, device)
        self.dones = _EndAllEpisodes(self._end_all_episodes)
        self._state = np.empty((self.n_envs, self.n_stack, *self.frame_shape), np.uint8)


# Not pickled: the store (carried as a snapshot), SB3's `dones` stand-in (a bound method; rebuilt) and scratch.
_NOT_PICKLED = frozenset({"store", "dones", "_state"})


def save_replay_buffer(model_or_buffer: Any, path: Union[str, "os.PathLike[str]"]) -> str:
    """Pickle a replay buffer (or a model's ``replay_buffer``) to ``path`` as SB3's ``save_replay_buffer``
    does, but atomically: into a temporary file next to it, renamed over ``path`` only once complete. A
    failure leaves ``path`` as it was and no temporary file. Like SB3, a path without a suffix gets
    ``.pkl``. Returns the path written; ``model.load_replay_buffer(path)`` reads it."""
    buffer = getattr(model_or_buffer, "replay_buffer", model_or_buffer)
    if not isinstance(buffer, SB3ReplayBuffer):
        raise TypeError(f"save_replay_buffer needs an SB3 off-policy model or replay buffer, got "
                        f"{type(model_or_buffer).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    target = os.fspath(path)
    if not os.path.splitext(target)[1]:
        target += ".pkl"
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(target) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(buffer, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target
