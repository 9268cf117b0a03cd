"""Ingestor: a learner-side thread that keeps the actors busy and writes their chunks into the replay."""
from __future__ import annotations

import collections
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, Iterator, List, Optional, Set, Tuple

from .._validate import positive_int
from ..prioritized import PrioritizedReplayBuffer
from .chunk import ChunkWriter, starts_all_envs
from .connect import require_ray
from .pool import ActorPool


@dataclass
class IngestStats:
    """Counters of an :class:`Ingestor` (a snapshot)."""

    chunks: int = 0  # chunks written into the replay
    transitions: int = 0  # steps written (agent steps of all actors that reached the replay)
    lost_chunks: int = 0  # requests that failed (actor died or was unreachable): their steps never arrived
    dropped_chunks: int = 0  # chunks that arrived after a gap in their actor's sequence, not written
    restarts: int = 0  # actor incarnations replaced by new ones (Ray restarted the actor)
    seconds: float = 0.0  # since start()
    last_failure: str = ""  # the latest lost request's error, for logs
    episodes: int = 0  # real games the actors reported as ended (the latest: episode_returns ...)
    episode_returns: List[float] = field(default_factory=list)  # recent real returns reported by the envs
    episode_lengths: List[int] = field(default_factory=list)  # their lengths (agent steps of one env)
    episode_actors: List[int] = field(default_factory=list)  # the actor whose env played each

    @property
    def rate(self) -> float:
        """Transitions written per second since start()."""
        return self.transitions / self.seconds if self.seconds > 0 else 0.0


class Ingestor:
    """``Ingestor(pool, replay, inflight_per_actor=2)``: ``start()`` a daemon thread that keeps
    ``inflight_per_actor`` chunk requests queued on every actor (so each steps its envs back to
    back) and writes every finished chunk into ``replay`` whole, env e of actor a into stream
    ``a * K + e``. The replay must have ``num_envs = pool.num_streams`` and this thread must be its
    only writer; the learner samples from it concurrently.

    A chunk lost with a dead or unreachable actor is counted and its actor asked again (Ray restarts
    it, and the restarted actor begins new episodes in all its envs, which ends the old episodes of
    its streams in the replay). A chunk that follows a gap in its actor's sequence is dropped and
    the actor asked to restart its episodes, so no transition ever joins frames across a gap. A
    stale chunk (a duplicate, one delivered after a newer one was written, or one from an
    incarnation the actor has been restarted out of) is dropped too, including one that starts
    every env: nothing is written twice or out of order. Any
    other error (the env, its constructor or the replay raising) stops the thread; ``check()`` re-raises it on the
    caller's thread, and ``stop()`` does too.
    """

    def __init__(self, pool: ActorPool, replay: Any, inflight_per_actor: int = 2, poll_seconds: float = 0.1,
                 keep_returns: int = 1000) -> None:
        if not pool.actors:
            raise ValueError("start the pool before creating its Ingestor")
        per = isinstance(replay, PrioritizedReplayBuffer)
        if pool.prioritized != per:
            raise ValueError(f"pool prioritized={pool.prioritized} but the replay is "
                             f"{'a PrioritizedReplayBuffer' if per else 'uniform'}")
        if tuple(replay.frame_shape) != pool.frame_shape or replay.stack != pool.stack or replay.pad != pool.pad:
            raise ValueError(f"the replay's frame_shape/stack/pad {tuple(replay.frame_shape)}/{replay.stack}/"
                             f"{replay.pad} differ from the pool's {pool.frame_shape}/{pool.stack}/{pool.pad}")
        inflight_per_actor = positive_int(inflight_per_actor, "inflight_per_actor")
        self.pool, self.replay = pool, replay
        self.writer = ChunkWriter(replay, pool.num_actors, pool.envs_per_actor)
        self.inflight_per_actor, self.poll_seconds = inflight_per_actor, poll_seconds
        self._stats = IngestStats()
        self._games: Deque[Tuple[float, int, int]] = collections.deque(maxlen=keep_returns)  # (return, length, actor)
        self._lock = threading.Lock()
        self._write = threading.Lock()  # held while a chunk is written: paused() keeps the replay still
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._t0 = 0.0
        self.error: Optional[BaseException] = None
        n = pool.num_actors
        self._sent_version = [-1] * n  # weights version each actor has, or was last sent
        self._expect: List[Optional[Tuple[int, int]]] = [None] * n  # (incarnation, next seq)
        self._incarnation: List[Optional[int]] = [None] * n  # whose chunks are being written
        self._retired: List[Set[int]] = [set() for _ in range(n)]  # incarnations replaced since
        self._resync = [False] * n
        self._failures = [0] * n  # consecutive failed requests
        self._retry_at = [0.0] * n
        self._pending: Dict[Any, Tuple[int, int]] = {}  # ref -> (actor, request number)
        self._requests = 0

    # ---- caller side --------------------------------------------------------------------------
    def start(self) -> "Ingestor":
        if self._thread is not None:
            raise RuntimeError("the Ingestor is already started")
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="dqnfast-ingest", daemon=True)
        self._thread.start()
        return self

    def stats(self) -> IngestStats:
        with self._lock:
            s = IngestStats(**{k: v for k, v in vars(self._stats).items() if not k.startswith("episode_")})
            s.episode_returns = [r for r, _, _ in self._games]
            s.episode_lengths = [n for _, n, _ in self._games]
            s.episode_actors = [a for _, _, a in self._games]
        if self._t0:
            s.seconds = time.perf_counter() - self._t0
        return s

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No chunk is written while the block runs (e.g. the replay is saved), and :meth:`stats`
        counts exactly what the replay got; chunks that arrive meanwhile wait in the object store."""
        with self._write:
            yield

    def check(self) -> None:
        """Re-raise the error that stopped the ingest thread, if any."""
        if self.error is not None:
            raise RuntimeError(f"ingest stopped: {self.error!r}") from self.error

    @property
    def actors_heard(self) -> int:
        """How many actors have delivered at least one chunk into the replay."""
        return sum(i is not None for i in self._incarnation)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: Optional[float] = 30.0) -> None:
        """Stop the thread (chunks still in flight are not written); then ``check()``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pending.clear()
        self.check()

    def __enter__(self) -> "Ingestor":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- thread -------------------------------------------------------------------------------
    def _submit(self, a: int) -> None:
        version, ref = self.pool.weights()
        send = ref if version > self._sent_version[a] else None
        if send is not None:
            self._sent_version[a] = version
        fut = self.pool.actors[a].collect.remote(send, version if send is not None else -1, self._resync[a])
        self._requests += 1
        self._pending[fut] = (a, self._requests)

    def _run(self) -> None:
        ray = require_ray()
        try:
            for a in range(self.pool.num_actors):
                for _ in range(self.inflight_per_actor):
                    self._submit(a)
            while not self._stop.is_set():
                self._resubmit_due()
                if not self._pending:
                    time.sleep(self.poll_seconds)
                    continue
                ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=self.poll_seconds)
                if ready:  # everything else already finished too, in request order
                    more, _ = ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
                    ready = sorted(set(ready) | set(more), key=lambda r: self._pending[r][1])
                for ref in ready:
                    if self._stop.is_set():
                        break
                    self._receive(ray, ref)
        except BaseException as e:  # surfaced by check()/stop(), never swallowed
            self.error = e

    def _receive(self, ray: Any, ref: Any) -> None:
        a, _ = self._pending.pop(ref)
        try:
            chunk = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError,
                ray.exceptions.ObjectLostError) as e:
            if getattr(e, "actor_init_failed", False):
                raise  # the actor's constructor raised (env_fn, net_fn): a bug to report, not a fault to ride out
            self._lost(a, e)
            return
        self._failures[a] = 0
        self._ingest(a, chunk)
        self._submit(a)

    def _lost(self, a: int, err: BaseException) -> None:
        with self._lock:
            self._stats.lost_chunks += 1
            self._stats.last_failure = f"actor {a}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        self._sent_version[a] = -1  # a restarted actor has no weights
        self._resync[a] = True
        self._failures[a] += 1
        # back off while the actor stays unreachable (its node is gone and it cannot be placed yet)
        self._retry_at[a] = time.perf_counter() + min(0.05 * 2 ** min(self._failures[a], 8), 5.0)

    def _resubmit_due(self) -> None:
        now = time.perf_counter()
        for a in range(self.pool.num_actors):
            if self._retry_at[a] and now >= self._retry_at[a]:
                if sum(1 for act, _ in self._pending.values() if act == a) < self.inflight_per_actor:
                    self._submit(a)
                if sum(1 for act, _ in self._pending.values() if act == a) >= self.inflight_per_actor:
                    self._retry_at[a] = 0.0

    def _ingest(self, a: int, chunk: Dict[str, Any]) -> None:
        meta = chunk["meta"]
        if int(meta["actor"]) != a:
            raise ValueError(f"actor {a} answered with a chunk of actor {meta['actor']}")
        inc, seq = int(meta["incarnation"]), int(meta["seq"])
        fresh = starts_all_envs(chunk, self.pool.envs_per_actor)
        current = inc == self._incarnation[a]
        # Stale: a chunk of an incarnation this actor has left (Ray restarted it since), or one of the
        # current incarnation that is not newer than what was written (a duplicate, or one delivered
        # late). Dropped, fresh or not: the replay's streams already went on past it. Nothing is
        # missing from them, so no resync.
        if inc in self._retired[a] or (current and seq < self._expect[a][1]):
            with self._lock:
                self._stats.dropped_chunks += 1
            return
        if not current and int(meta["weights_version"]) < self._sent_version[a]:
            self._sent_version[a] = int(meta["weights_version"])  # a new process: send the weights again
        # A chunk that starts every env depends on nothing before it, so it may follow a gap (its
        # actor was asked to resync, or restarted). Any other must follow the last one written.
        if not fresh and (self._resync[a] or self._expect[a] != (inc, seq)):
            # a gap: writing this would join its frames to episodes whose last steps never arrived
            with self._lock:
                self._stats.dropped_chunks += 1
            self._resync[a] = True
            return
        with self._write:
            steps = self.writer.write(chunk)
            # counted before the write lock goes: inside paused(), stats() matches the replay
            with self._lock:
                if self._incarnation[a] is not None and self._incarnation[a] != inc:
                    self._stats.restarts += 1
                self._stats.chunks += 1
                self._stats.transitions += steps
                returns = list(meta.get("episode_returns", ()))
                lengths = list(meta.get("episode_lengths", [0] * len(returns)))
                self._games.extend((float(r), int(n), a) for r, n in zip(returns, lengths))
                self._stats.episodes += len(returns)
        self._resync[a] = False
        self._expect[a] = (inc, seq + 1)
        if not current and self._incarnation[a] is not None:
            self._retired[a].add(self._incarnation[a])  # its chunks are stale from now on
        self._incarnation[a] = inc
