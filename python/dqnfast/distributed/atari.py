"""``atari_env_fn``: the actors' env factory for Atari games, on dqnfast's own wrappers."""
from __future__ import annotations

from typing import Any, Dict


class AtariEnvFn:
    """``AtariEnvFn(env_id, **make_atari_env_kwargs)(actor_index, num_envs, seed)``: the vector env
    of ``num_envs`` Atari envs that :func:`dqnfast.wrappers.make_atari_env` builds (env i seeded
    ``seed + i``), for :class:`dqnfast.distributed.ActorPool`. Picklable, so it travels to the
    actors; each actor builds its own envs on its node."""

    def __init__(self, env_id: str = "ALE/Breakout-v5", **kwargs: Any) -> None:
        if "num_envs" in kwargs or "seed" in kwargs:
            raise ValueError("num_envs and seed are set per actor by the pool (envs_per_actor, seed)")
        self.env_id, self.kwargs = env_id, dict(kwargs)

    def __call__(self, actor_index: int, num_envs: int, seed: int) -> Any:
        import gymnasium as gym

        from ..wrappers import make_atari_env

        env = make_atari_env(self.env_id, num_envs=num_envs, seed=seed, **self.kwargs)
        if not isinstance(env, gym.vector.VectorEnv):  # one env: a vector of one
            env = gym.vector.SyncVectorEnv([lambda: env])
        return env

    def __repr__(self) -> str:
        args: Dict[str, Any] = {"env_id": self.env_id, **self.kwargs}
        return f"AtariEnvFn({', '.join(f'{k}={v!r}' for k, v in args.items())})"
