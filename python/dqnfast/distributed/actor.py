"""EnvActor: one Ape-X actor, stepping a vector of envs and returning chunks (see chunk.py).

A plain class; :class:`dqnfast.distributed.ActorPool` runs it as a Ray actor. It keeps each env's
frame stack (the replay's ``stack`` and ``pad``), acts epsilon-greedily with its own epsilon on its
copy of the network (uniformly at random when there is none), and on prioritized runs computes
each step's initial priority |r + gamma (1 - terminated) max_a Q(s', a) - Q(s, a)| with that copy
(one-step TD error, from the forward pass it makes to act anyway).
"""
from __future__ import annotations

import secrets
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from ..episode_stats import finished_games
from ..feed import StepFeed, autoreset_mode
from .chunk import Chunk, ChunkBuilder

EnvFn = Callable[[int, int, int], Any]  # (actor_index, num_envs, seed) -> vector env


def _was_restarted() -> bool:
    """Whether this process is a Ray actor brought back after a failure (False outside Ray)."""
    try:
        import ray

        if not ray.is_initialized():
            return False
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:  # pragma: no cover - a Ray without that call: treat as a fresh start
        return False


class EnvActor:
    def __init__(self, actor_index: int, envs_per_actor: int, env_fn: EnvFn, epsilon: float, *,
                 net_fn: Optional[Callable[[], Any]] = None, seed: int = 0, rounds_per_chunk: int = 32,
                 frame_shape: Sequence[int] = (84, 84), stack: int = 4, pad: str = "zero",
                 prioritized: bool = False, gamma: float = 0.99) -> None:
        self.actor_index, self.k = int(actor_index), int(envs_per_actor)
        self.epsilon, self.rounds = float(epsilon), int(rounds_per_chunk)
        self.frame_shape, self.stack, self.pad = tuple(frame_shape), int(stack), pad
        self.prioritized, self.gamma = bool(prioritized), float(gamma)
        self.restarted = _was_restarted()
        # A new incarnation after every (re)start: the learner tells restarts apart by it, and a
        # restarted actor must not replay its predecessor's random streams.
        self.incarnation = secrets.randbits(62)
        salt = self.incarnation % 2**31 if self.restarted else 0
        env_seed = (int(seed) + 1_000_003 * self.actor_index + salt) % 2**31
        self.env = env_fn(self.actor_index, self.k, env_seed)
        if not hasattr(self.env, "single_action_space"):
            raise TypeError("env_fn must return a vector env (reset/step on num_envs envs, single_action_space)")
        self.feed = StepFeed(self.k, autoreset_mode(self.env))  # turns each env step into chunk rows
        self.all_envs = np.arange(self.k)
        self.num_actions = int(self.env.single_action_space.n)
        self.rng = np.random.default_rng([int(seed), self.actor_index, salt])
        self.net = None
        if net_fn is not None:
            import torch

            torch.set_num_threads(1)  # many actors share a node's cores
            self.net = net_fn().eval()
        if self.prioritized and self.net is None:
            raise ValueError("prioritized actors need net_fn (initial priorities come from the network)")
        self.weights_version = -1
        self.seq = 0
        self.stacks = np.zeros((self.k, self.stack) + self.frame_shape, np.uint8)
        self.q: Optional[np.ndarray] = None  # Q-values of the states in self.stacks
        self.fresh = True  # the next chunk starts every env's episode

    # ---- network ------------------------------------------------------------------------------
    def set_weights(self, weights: Dict[str, np.ndarray], version: int) -> None:
        import torch

        self.net.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in weights.items()})
        self.weights_version = int(version)

    def _forward(self, states: np.ndarray) -> Optional[np.ndarray]:
        if self.net is None or len(states) == 0:
            return None
        import torch

        with torch.no_grad():
            return self.net(torch.from_numpy(states)).float().numpy()

    # ---- env ----------------------------------------------------------------------------------
    def _frames(self, obs: Any) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.dtype != np.uint8 or obs.size != self.k * int(np.prod(self.frame_shape)):
            raise ValueError(f"the env gave {obs.dtype} observations of shape {obs.shape}; expected uint8 "
                             f"({self.k}, {', '.join(map(str, self.frame_shape))})")
        return obs.reshape((self.k,) + self.frame_shape)

    def _begin(self, envs: np.ndarray, frames: np.ndarray) -> None:
        """New episodes in ``envs``: their stacks hold only the first frame, padded as the replay pads."""
        self.stacks[envs] = frames[:, None] if self.pad == "first" else 0
        self.stacks[envs, -1] = frames

    def _act(self) -> np.ndarray:
        explore = self.rng.random(self.k) < self.epsilon
        actions = self.rng.integers(self.num_actions, size=self.k)
        if self.q is not None:
            actions = np.where(explore, actions, self.q.argmax(axis=1))
        return actions.astype(np.int64)

    def collect(self, weights: Optional[Dict[str, np.ndarray]] = None, version: int = -1,
                restart_episodes: bool = False) -> Chunk:
        """Step every env ``rounds_per_chunk`` times and return the chunk. ``weights`` (a state dict
        of numpy arrays, as published) replace the network's first; ``restart_episodes`` begins new
        episodes in all envs first (the learner asks for it when it lost track of this actor)."""
        if weights is not None:
            self.set_weights(weights, version)
        b = ChunkBuilder(self.frame_shape, self.prioritized)
        if self.fresh or restart_episodes:
            obs, _ = self.env.reset()
            frames = self._frames(obs)
            self._begin(self.all_envs, frames)
            self.feed.start(b, frames)
            self.q = self._forward(self.stacks)
            self.fresh = False
        finished = []
        for _ in range(self.rounds):
            actions = self._act()
            obs, rewards, terminated, truncated, info = self.env.step(actions)
            finished.extend(finished_games(info))
            rows = self.feed.rows(self._frames(obs), terminated, truncated, info)
            stepping = rows.stepping
            self.stacks[stepping, :-1] = self.stacks[stepping, 1:]
            self.stacks[stepping, -1] = rows.next_frames
            prio = q_next = None
            if self.prioritized:  # initial priorities: |TD error| under the actor's network
                q_sa = self.q[stepping, actions[stepping]]
                q_next = self._forward(self.stacks)  # next states of all stepping envs, final ones too
                boot = (1.0 - rows.terminated) * q_next[stepping].max(axis=1)
                prio = np.abs(np.asarray(rewards, np.float32)[stepping] + self.gamma * boot - q_sa)
            self.feed.write(b, rows, actions, rewards, **({"priorities": prio} if self.prioritized else {}))
            if rows.starts.size:
                self._begin(rows.starts, rows.start_frames)
            # the states just evaluated for the priorities are the next acting states unless an env reset
            self.q = q_next if q_next is not None and not rows.starts.size else self._forward(self.stacks)
        meta = {"actor": self.actor_index, "incarnation": self.incarnation, "seq": self.seq,
                "weights_version": self.weights_version,
                "episode_returns": [r for r, _ in finished], "episode_lengths": [n for _, n in finished]}
        self.seq += 1
        return b.build(meta)

    def info(self) -> Dict[str, Any]:
        """Who this actor is now: index, incarnation, restarted, epsilon, weights version, chunks sent."""
        return {"actor": self.actor_index, "incarnation": self.incarnation, "restarted": self.restarted,
                "epsilon": self.epsilon, "weights_version": self.weights_version, "chunks": self.seq}

    def pid(self) -> int:
        import os

        return os.getpid()
