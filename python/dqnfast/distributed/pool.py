"""ActorPool: N Ape-X actors as Ray actors, and the weights they act with."""
from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._validate import positive_int
from .actor import EnvActor, EnvFn
from .connect import connect, require_ray
from .epsilon import apex_epsilons


def check_cpus(need: float, have: float, owns_ray: bool) -> None:
    """Actors that ask for more CPUs than the cluster has never start: Ray queues them for good, and
    the learner would wait on them silently. A Ray this pool started has no more CPUs to come, so that
    is an error; a cluster joined may grow (an autoscaler), so it gets a warning."""
    if need <= have:
        return
    msg = (f"the actors need {need:g} CPUs but the Ray cluster has {have:g}: the ones that do not fit "
           f"would wait for CPUs and never start. Use fewer actors (--ray-actors), or add nodes")
    if owns_ray:
        raise ValueError(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


class ActorPool:
    """``num_actors`` Ray actors, each stepping ``envs_per_actor`` envs made by
    ``env_fn(actor_index, envs_per_actor, seed)`` (a picklable callable returning a vector env with
    autoreset, e.g. ``make_atari_env(num_envs=K)`` wrapped in a function).

    - ``address``: see :func:`dqnfast.distributed.connect.connect` (``"local"``, ``"auto"``,
      ``"host:port"``, or None for the Ray this process already uses).
    - ``net_fn``: a picklable callable building the Q-network (uint8 (B, stack, H, W) in, Q-values
      out) on the actors; without it they act uniformly at random.
    - Actor i explores with ``epsilons[i]``, by default Ape-X's ``0.4 ** (1 + 7 i / (N - 1))``.
    - ``max_restarts``: how often Ray brings back a failed actor (-1: always). The learner's
      :class:`Ingestor` keeps going meanwhile.
    - ``actor_options``: extra ``ray.remote`` options (resources, scheduling): one dict for every
      actor, or a list of N dicts, one per actor.

    ``start()`` connects and creates the actors; ``publish_weights(state_dict)`` puts the weights in
    the object store once (actors receive them with their next chunk request); ``stop()`` kills the
    actors, and shuts Ray down if this pool started it. Use it as a context manager.
    """

    def __init__(self, address: Optional[str], num_actors: int, envs_per_actor: int, env_fn: EnvFn, *,
                 net_fn: Optional[Callable[[], Any]] = None, seed: int = 0, prioritized: bool = False,
                 gamma: float = 0.99, rounds_per_chunk: int = 32, frame_shape: Sequence[int] = (84, 84),
                 stack: int = 4, pad: str = "zero", epsilons: Optional[Sequence[float]] = None,
                 max_restarts: int = -1, num_cpus_per_actor: float = 1,
                 actor_options: Union[None, Dict[str, Any], Sequence[Dict[str, Any]]] = None, dashboard: bool = False,
                 num_cpus: Optional[int] = None) -> None:
        self.address = address
        self.num_actors = positive_int(num_actors, "num_actors")
        self.envs_per_actor = positive_int(envs_per_actor, "envs_per_actor")
        self.rounds_per_chunk = positive_int(rounds_per_chunk, "rounds_per_chunk")
        if not callable(env_fn):
            raise TypeError(f"env_fn must be callable (actor_index, num_envs, seed) -> vector env, got {env_fn!r}")
        if pad not in ("zero", "first"):
            raise ValueError(f"pad must be 'zero' or 'first', got {pad!r}")
        if prioritized and net_fn is None:
            raise ValueError("prioritized=True needs net_fn: initial priorities come from the actors' network")
        self.epsilons = list(apex_epsilons(self.num_actors) if epsilons is None else epsilons)
        if len(self.epsilons) != self.num_actors or not all(0.0 <= e <= 1.0 for e in self.epsilons):
            raise ValueError(f"epsilons must be {self.num_actors} numbers in [0, 1], got {self.epsilons}")
        self.env_fn, self.net_fn = env_fn, net_fn
        self.seed, self.prioritized, self.gamma = int(seed), bool(prioritized), float(gamma)
        self.frame_shape, self.stack, self.pad = tuple(frame_shape), positive_int(stack, "stack"), pad
        self.max_restarts = int(max_restarts)
        self.num_cpus_per_actor = num_cpus_per_actor
        if actor_options is None or isinstance(actor_options, dict):
            self.actor_options = [dict(actor_options or {})] * self.num_actors
        else:
            self.actor_options = [dict(o) for o in actor_options]
            if len(self.actor_options) != self.num_actors:
                raise ValueError(f"actor_options must be one dict or {self.num_actors} dicts, got {len(self.actor_options)}")
        self.dashboard, self.num_cpus = dashboard, num_cpus
        self.actors: List[Any] = []
        self._owns_ray = False
        self._weights: Tuple[int, Any] = (-1, None)

    @property
    def num_streams(self) -> int:
        """The learner's replay needs ``num_envs`` = this: one stream per actor env."""
        return self.num_actors * self.envs_per_actor

    def start(self) -> "ActorPool":
        ray = require_ray()
        if self.actors:
            raise RuntimeError("the pool is already started")
        self._owns_ray = connect(self.address, dashboard=self.dashboard, num_cpus=self.num_cpus)
        remote_cls = ray.remote(EnvActor)
        opts = {"max_restarts": self.max_restarts, "max_task_retries": 0, "num_cpus": self.num_cpus_per_actor}
        need = sum(float(o.get("num_cpus", self.num_cpus_per_actor)) for o in self.actor_options)
        try:
            check_cpus(need, float(ray.cluster_resources().get("CPU", 0.0)), self._owns_ray)
        except ValueError:
            self.stop()
            raise
        self.actors = [
            remote_cls.options(**opts, **self.actor_options[i]).remote(
                i, self.envs_per_actor, self.env_fn, self.epsilons[i], net_fn=self.net_fn, seed=self.seed,
                rounds_per_chunk=self.rounds_per_chunk, frame_shape=self.frame_shape, stack=self.stack,
                pad=self.pad, prioritized=self.prioritized, gamma=self.gamma)
            for i in range(self.num_actors)
        ]
        return self

    def publish_weights(self, state_dict: Dict[str, Any]) -> int:
        """Put the network's weights in the object store (once, as numpy arrays); every actor gets
        them with its next chunk request. Returns the new weights version."""
        ray = require_ray()
        arrays = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in state_dict.items()}
        version = self._weights[0] + 1
        self._weights = (version, ray.put(arrays))
        return version

    def weights(self) -> Tuple[int, Any]:
        """(version, object ref) of the latest published weights; (-1, None) before any."""
        return self._weights

    def stop(self) -> None:
        """Kill the actors (no restart) and shut Ray down if this pool started it. Idempotent."""
        if not self.actors and not self._owns_ray:
            return
        ray = require_ray()
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # already gone (its node was lost): nothing left to stop
                pass
        self.actors = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> "ActorPool":
        return self.start() if not self.actors else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
