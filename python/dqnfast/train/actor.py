"""The actor: steps the environment(s), acts, and feeds every transition to the replay.

:class:`Actor` owns the env stepping, the acting (through a ``policy(states, epsilon)``) and the
replay writes; it does not learn. :class:`ActorThread` runs an Actor beside the learner (the
trainer's ``--async-actor``), never more than a given number of agent steps ahead of it.
"""
from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional, Tuple

import numpy as np

from ..episode_stats import Finished, finished_games
from ..feed import StepFeed, autoreset_mode

Policy = Callable[[np.ndarray, float], np.ndarray]


class Actor:
    """Steps the environment(s) with ``policy`` and writes every transition to the replay.

    The replay is also the frame stacker: ``rb.stacked(env)`` is the state each env acts on. Works
    with one gymnasium env or a vector env (either autoreset mode). A stateful policy (DRQN's LSTM)
    has an ``episode_started(env)`` hook, called at every episode start of each env.

    ``step`` is ``send`` then ``receive``. With a vector env that steps in the background
    (``step_async``/``step_wait``, e.g. :class:`dqnfast.vector_env.ProcessVectorEnv`), the caller may
    learn between the two while the env workers emulate; nothing reaches the replay before
    ``receive`` has the whole step, so a failing env leaves no half-written step behind.
    """

    def __init__(self, env, rb, policy: Policy, num_envs: int) -> None:
        self.env, self.rb, self.policy, self.num_envs = env, rb, policy, num_envs
        self.vector = hasattr(env, "single_action_space")  # a gymnasium VectorEnv (even of one env)
        self.overlaps = self.vector and hasattr(env, "step_async") and hasattr(env, "step_wait")
        self._sent: Optional[Tuple[np.ndarray, Any]] = None
        self.feed = StepFeed(num_envs, autoreset_mode(env))  # turns each env step into replay writes
        self.states = np.empty((num_envs, rb.stack, *rb.frame_shape), np.uint8)

    def _started(self, env: int) -> None:
        hook = getattr(self.policy, "episode_started", None)
        if hook is not None:
            hook(env)

    def reset(self, seed: int) -> None:
        """Start a game in every env; a vector env seeds env i with ``seed + i``."""
        obs, _ = self.env.reset(seed=seed)
        self.feed.start(self.rb, np.asarray(obs).reshape(self.num_envs, *self.rb.frame_shape))
        for i in range(self.num_envs):
            self._started(i)

    def step(self, epsilon: float) -> Finished:
        """One agent step of every env; returns the real games that ended."""
        self.send(epsilon)
        return self.receive()

    def send(self, epsilon: float) -> None:
        """Acts for every env and hands the actions to the env (in the background where it can)."""
        if self._sent is not None:
            raise RuntimeError("Actor.send: the previous step was not received yet")
        rb = self.rb
        for i in range(self.num_envs):
            rb.stacked(i, out=self.states[i])
        actions = np.asarray(self.policy(self.states, epsilon), dtype=np.int64)
        if self.overlaps:
            self.env.step_async(actions)
            self._sent = (actions, None)
        elif self.vector:
            self._sent = (actions, self.env.step(actions))
        else:
            o, r, t, tr, info = self.env.step(int(actions[0]))
            self._sent = (actions, (o[None], (r,), (t,), (tr,), info))

    def receive(self) -> Finished:
        """Waits for the step sent, writes its transitions to the replay; the real games that ended."""
        if self._sent is None:
            raise RuntimeError("Actor.receive: no step was sent")
        actions, result = self._sent
        self._sent = None
        obs, rewards, terms, truncs, info = self.env.step_wait() if result is None else result
        rows = self.feed.step(self.rb, actions, obs, rewards, terms, truncs, info)
        for i in rows.starts:
            self._started(int(i))
        if not self.vector and rows.ended.size:  # a single env: reset it here, its next game starts
            first, _ = self.env.reset()
            self.feed.start(self.rb, np.asarray(first)[None], np.zeros(1, np.int64))
            self._started(0)
        return finished_games(info)

    def abandon(self) -> None:
        """Drops a step still in flight (the run is stopping): it is collected from the env but not
        written to the replay, so the replay holds exactly the steps the run counted."""
        sent, self._sent = self._sent, None
        if sent is not None and sent[1] is None:
            try:
                self.env.step_wait()
            except Exception:  # the env failed: there is nothing left to collect
                pass


class ActorThread:
    """Runs ``actor.step`` on its own thread while the caller learns.

    ``step`` (agent steps so far, summed over envs) and the games finished since the last
    :meth:`take_finished` are shared under ``cond``; the caller reads them holding it and calls
    ``cond.notify_all()`` after each update so the actor re-checks ``limit()`` (the agent step it may
    not pass until the learner catches up). :meth:`paused` holds the actor between two steps.
    Use as a context manager: the thread starts on entry; on exit it is stopped and joined, and an
    exception raised in it is raised in the caller.
    """

    def __init__(self, actor: Actor, *, step: int, total_steps: int, limit: Callable[[], int],
                 epsilon: Callable[[int], float]) -> None:
        self.actor, self.step, self.total_steps = actor, step, total_steps
        self._limit, self._epsilon = limit, epsilon
        self.cond = threading.Condition()
        self.done = False  # the actor has stopped (total_steps reached, stopped, or failed)
        self.error: Optional[BaseException] = None
        self._finished: List[Tuple[Finished, int, float]] = []
        self._stop = self._pause = self._paused = False
        self._thread = threading.Thread(target=self._run, name="dqnfast-actor", daemon=True)

    def _run(self) -> None:
        cond = self.cond
        try:
            while True:
                with cond:
                    while not self._stop and self.step < self.total_steps and (
                            self._pause or self.step >= self._limit()):
                        if self._pause:  # a checkpoint is being written: the replay must be still
                            self._paused = True
                            cond.notify_all()
                        cond.wait()
                    self._paused = False
                    if self.step >= self.total_steps or self._stop:
                        break
                    epsilon = self._epsilon(self.step)
                finished = self.actor.step(epsilon)  # env + replay add: no lock (the buffer is lock-free)
                with cond:
                    self.step += self.actor.num_envs
                    if finished:
                        self._finished.append((finished, self.step, epsilon))
                    cond.notify_all()
        except BaseException as e:  # surfaced in the caller's thread
            self.error = e
        finally:
            with cond:
                self.done = True
                cond.notify_all()

    def stop(self) -> None:
        """Ask the actor to stop after its current step (e.g. the run's time budget is spent)."""
        with self.cond:
            self._stop = True
            self.cond.notify_all()

    @property
    def has_finished(self) -> bool:
        """Whether games ended since the last :meth:`take_finished`; hold ``cond``."""
        return bool(self._finished)

    def take_finished(self) -> List[Tuple[Finished, int, float]]:
        """(games, agent step, epsilon) of each step that ended games since the last call; hold ``cond``."""
        ready, self._finished = self._finished, []
        return ready

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The actor waits between two steps while the block runs (e.g. rb.save needs a still replay)."""
        with self.cond:
            self._pause = True
            self.cond.notify_all()
            while not self._paused and not self.done:
                self.cond.wait()
        try:
            yield
        finally:
            with self.cond:
                self._pause = False
                self.cond.notify_all()

    def __enter__(self) -> "ActorThread":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        self._thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


class NetworkCopy:
    """The actor's own copy of the online network: called from the actor thread, refreshed from the
    learner's network after each update; a lock keeps a call from seeing half-loaded weights."""

    def __init__(self, network) -> None:
        self.network = copy.deepcopy(network).requires_grad_(False)
        self._lock = threading.Lock()

    def __call__(self, x):
        with self._lock:
            return self.network(x)

    def refresh(self, source) -> None:
        with self._lock:
            self.network.load_state_dict(source.state_dict())
