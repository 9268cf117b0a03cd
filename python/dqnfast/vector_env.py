"""`ProcessVectorEnv`: a gymnasium ``VectorEnv`` that steps its envs in worker processes.

Python threads cannot step ALE in parallel (``ale.act`` holds the GIL), so the envs are split
over ``workers`` processes. Each worker owns a fixed group of envs (env i goes to worker
``i % workers``), steps them one after the other and writes their observations, rewards and flags
straight into shared memory; the main process only passes a one-byte message per worker each way.
No observation is pickled, and the envs are the very single-env stacks that
``dqnfast.wrappers.make_atari_env`` builds, so env i gives exactly the trajectory the single env
gives for the same seed and actions, whatever its wrappers do at a reset.

``step_async(actions)`` returns at once and ``step_wait()`` collects the results: the main process
can sample a replay batch or run a gradient step while the workers emulate. ``send(actions,
env_ids)`` and ``recv()`` (EnvPool's asynchronous API) step whole worker groups on their own:
``recv()`` returns the first group done, so the caller can act on it and send it off again while
the other workers still emulate, and no worker waits for another.

Autoreset (``metadata["autoreset_mode"]``): ``SAME_STEP`` (default) resets an env inside the step
where its episode ends; the step returns the new episode's first observation, and
``info["final_obs"][i]`` (mask ``info["_final_obs"]``) is the episode's real last observation, so
a replay buffer gets the exact transition and the next episode's start from one step. ``NEXT_STEP``
(gymnasium's default) returns the last observation and resets on the next step instead, ignoring
that step's action and returning reward 0.

A wait cut short by an exception (Ctrl-C in ``step_wait``, ``recv`` or ``reset``) leaves the
replies it did not read owed, worker by worker: ``step_wait()``/``recv()`` called again resume
and return the interrupted step's results once, and ``reset()`` reads and drops them before it
resets (a ``reset()`` cut short is called again), so no later call returns an earlier call's
results; a new step before either is a RuntimeError.

``info`` holds only what a DQN trainer needs, all as arrays over the envs: ``episode`` (``r``,
``l``, ``t``; mask ``_episode``) when an env's wrappers reported ``info["episode"]`` on this step
or on the reset made inside it, and, in SAME_STEP mode, ``final_obs``/``_final_obs`` on steps where
an episode ended. Other per-env info keys are not carried across processes.
"""
from __future__ import annotations

import multiprocessing as mp
import operator
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

try:
    import cloudpickle
    import gymnasium as gym
    from gymnasium.spaces import Box
    from gymnasium.vector import AutoresetMode, VectorEnv
    from gymnasium.vector.utils import batch_space
except ImportError as e:  # pragma: no cover - gymnasium is an optional dependency
    raise ImportError('dqnfast.vector_env needs gymnasium: pip install "dqnfast[atari]"') from e

__all__ = ["EnvWorkerError", "ProcessVectorEnv", "add_same_step"]


def add_same_step(rb: Any, actions: Any, obs: Any, rewards: Any, terminated: Any, truncated: Any,
                  info: Dict[str, Any], envs: Optional[np.ndarray] = None) -> np.ndarray:
    """Writes one SAME_STEP vector step, the actions taken and then what ``step`` returned (obs,
    rewards, terminated, truncated, info), into a replay with one ``add_batch``: row i is env
    ``envs[i]`` (all envs in order when None). An ended episode's transition ends at its real last
    frame (``info["final_obs"]``), and ``obs`` (already the next episode's first frame there) starts
    that env's next episode. Returns the envs whose episode ended."""
    terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
    ended = np.flatnonzero(terminated | truncated)
    next_frames = obs
    if ended.size:
        next_frames = np.array(obs)
        next_frames[ended] = np.asarray(info["final_obs"])[ended]
    rb.add_batch(actions, np.asarray(rewards, np.float32), next_frames, terminated, truncated, envs=envs)
    ended_envs = ended if envs is None else np.asarray(envs)[ended]
    if ended.size:
        rb.start_episodes(np.ascontiguousarray(np.asarray(obs)[ended]), envs=ended_envs)
    return ended_envs


class EnvWorkerError(RuntimeError):
    """An env failed in a worker process, or a worker process died; the vector env is closed."""

_STEP, _RESET, _CLOSE, _ERROR = b"s", b"r", b"c", b"e"
# A worker answers a step or reset with one byte of flags (so the main process need not scan the
# arrays on every step), or with _ERROR and a traceback.
_ENDED, _EPISODE = 1, 2  # some env's episode ended / some env reported episode statistics


class _Shared:
    """The arrays main and workers share: one RawArray each, viewed as numpy arrays."""

    FIELDS = (("actions", np.int64), ("rewards", np.float64), ("terminated", np.bool_),
              ("truncated", np.bool_), ("done_episode", np.bool_), ("episode_r", np.float64),
              ("episode_l", np.int64), ("episode_t", np.float64))

    def __init__(self, ctx, num_envs: int, obs_shape: Tuple[int, ...], obs_dtype: np.dtype):
        self.num_envs, self.obs_shape, self.obs_dtype = num_envs, obs_shape, np.dtype(obs_dtype)
        obs_bytes = num_envs * int(np.prod(obs_shape, dtype=np.int64)) * self.obs_dtype.itemsize
        self.raw = {"obs": ctx.RawArray("B", max(obs_bytes, 1)), "final_obs": ctx.RawArray("B", max(obs_bytes, 1))}
        for name, dtype in self.FIELDS:
            self.raw[name] = ctx.RawArray("B", num_envs * np.dtype(dtype).itemsize)
        self.arrays()

    def arrays(self) -> None:
        n = self.num_envs
        for name in ("obs", "final_obs"):
            a = np.frombuffer(self.raw[name], np.uint8)[: n * int(np.prod(self.obs_shape, dtype=np.int64))
                                                        * self.obs_dtype.itemsize]
            setattr(self, name, a.view(self.obs_dtype).reshape((n,) + self.obs_shape))
        for name, dtype in self.FIELDS:
            setattr(self, name, np.frombuffer(self.raw[name], dtype))

    def __getstate__(self) -> Dict[str, Any]:  # RawArrays travel to the worker at its start
        return {"raw": self.raw, "num_envs": self.num_envs, "obs_shape": self.obs_shape, "obs_dtype": self.obs_dtype}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.arrays()


def _worker(conn: Connection, main_end: Connection, env_fns_pickled: bytes, env_ids: List[int], shared: _Shared,
            same_step: bool) -> None:
    """Owns envs ``env_ids``: builds them, then answers step/reset/close messages until closed."""
    # A forked worker holds a copy of the main process's end of its pipe: closed, so that the worker
    # sees end-of-file and exits if the main process dies.
    main_end.close()
    envs: List[gym.Env] = []
    try:
        envs = [fn() for fn in cloudpickle.loads(env_fns_pickled)]
        needs_reset = [False] * len(envs)
        conn.send_bytes(b"\0")
        while True:
            msg = conn.recv_bytes()
            if msg == _STEP:
                flags = 0
                actions = shared.actions.tolist()
                for k, i in enumerate(env_ids):
                    env = envs[k]
                    if needs_reset[k]:  # NEXT_STEP: this step is the reset
                        obs, info = env.reset()
                        reward, terminated, truncated = 0.0, False, False
                        needs_reset[k] = False
                    else:
                        obs, reward, terminated, truncated, info = env.step(actions[i])
                        if terminated or truncated:
                            flags |= _ENDED
                            if same_step:
                                shared.final_obs[i] = obs
                                obs, reset_info = env.reset()
                                # The no-op after a lost life may end the game inside the reset.
                                info = info if "episode" in info else reset_info
                            else:
                                needs_reset[k] = True
                    shared.obs[i] = obs
                    shared.rewards[i] = reward
                    shared.terminated[i] = terminated
                    shared.truncated[i] = truncated
                    if _write_episode(shared, i, info):
                        flags |= _EPISODE
                conn.send_bytes(bytes((flags,)))
            elif msg[:1] == _RESET:  # one message with its arguments, so that no Ctrl-C falls between two
                seeds, options, mask = cloudpickle.loads(msg[1:])
                flags = 0
                for k, i in enumerate(env_ids):
                    if mask is not None and not mask[i]:
                        continue
                    obs, info = envs[k].reset(seed=seeds[i], options=options)
                    needs_reset[k] = False
                    shared.obs[i] = obs
                    if _write_episode(shared, i, info):
                        flags |= _EPISODE
                conn.send_bytes(bytes((flags,)))
            elif msg == _CLOSE:
                break
            else:
                raise RuntimeError(f"unknown message {msg!r}")
    except KeyboardInterrupt:
        pass
    except BaseException:
        try:
            conn.send_bytes(_ERROR + traceback.format_exc().encode())
        except OSError:
            pass
    finally:
        for env in envs:
            env.close()
        conn.close()


def _write_episode(shared: _Shared, i: int, info: Dict[str, Any]) -> bool:
    """Env i's episode statistics into the shared arrays; whether it has any."""
    episode = info.get("episode")
    shared.done_episode[i] = episode is not None
    if episode is not None:
        shared.episode_r[i] = float(np.asarray(episode["r"]))
        shared.episode_l[i] = int(np.asarray(episode["l"]))
        shared.episode_t[i] = float(np.asarray(episode.get("t", 0.0)))
    return episode is not None


def _index(value: Any, name: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return operator.index(value)


class ProcessVectorEnv(VectorEnv):
    """``ProcessVectorEnv(env_fns, workers=None, *, autoreset_mode=SAME_STEP, copy=True, context=None)``

    - ``env_fns``: one callable per env that builds it (pickled with cloudpickle, so closures
      work). Each env needs a fixed-shape ``Box`` observation space and a ``Discrete`` action
      space, the same for all envs.
    - ``workers``: processes to step them on, ``1 <= workers <= len(env_fns)``; None: one per env.
    - ``copy``: return copies of the observations (default). ``copy=False`` returns views of the
      shared buffer, valid until the next ``step_async``/``reset``: no copy on the hot path for a
      caller that stores them at once (``rb.add_batch``).
    - ``context``: the multiprocessing start method (None: the platform default, as gymnasium's
      ``AsyncVectorEnv``).
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        workers: Optional[int] = None,
        *,
        autoreset_mode: AutoresetMode = AutoresetMode.SAME_STEP,
        copy: bool = True,
        context: Optional[str] = None,
    ):
        env_fns = list(env_fns)
        if not env_fns or not all(callable(fn) for fn in env_fns):
            raise ValueError("env_fns must be a non-empty sequence of callables that build one env each")
        n = len(env_fns)
        workers = n if workers is None else _index(workers, "workers")
        if not 1 <= workers <= n:
            raise ValueError(f"workers must be between 1 and num_envs={n} (each worker steps at least one env), "
                             f"got {workers}")
        if not isinstance(autoreset_mode, AutoresetMode):
            try:
                autoreset_mode = AutoresetMode(autoreset_mode)
            except ValueError:
                raise ValueError(f"autoreset_mode must be AutoresetMode.SAME_STEP or NEXT_STEP, got {autoreset_mode!r}")
        if autoreset_mode not in (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP):
            raise ValueError(f"autoreset_mode must be AutoresetMode.SAME_STEP or NEXT_STEP, got {autoreset_mode}")

        # The spaces, from one env built here and closed again (as gymnasium's AsyncVectorEnv does).
        probe = env_fns[0]()
        try:
            obs_space, act_space = probe.observation_space, probe.action_space
            self.metadata = {**probe.metadata, "autoreset_mode": autoreset_mode}
            self.render_mode = None
            self.spec = probe.spec
        finally:
            probe.close()
        if not isinstance(obs_space, Box):
            raise TypeError(f"ProcessVectorEnv needs a Box observation space, got {type(obs_space).__name__}")
        if not isinstance(act_space, gym.spaces.Discrete):
            raise TypeError(f"ProcessVectorEnv needs a Discrete action space, got {type(act_space).__name__}")

        self.num_envs = n
        self.num_workers = workers
        self.autoreset_mode = autoreset_mode
        self.copy = bool(copy)
        self.single_observation_space = obs_space
        self.single_action_space = act_space
        self._action_range = (int(act_space.start), int(act_space.start) + int(act_space.n))
        self.observation_space = batch_space(obs_space, n)
        self.action_space = batch_space(act_space, n)
        self.closed = False
        self._waiting = False  # a step_async() whose results step_wait() has not returned yet
        self._busy: List[int] = []  # workers stepping for send(), in the order they were sent
        # Each command gets one reply. A reply is marked read the moment it is read, so that a wait
        # cut short (Ctrl-C) knows which replies are still in the pipes: a later step_wait()/recv()
        # reads only those, and reset() drops them, rather than taking them for its own replies.
        self._owed = [False] * workers  # worker w owes a reply not read yet
        self._flags = [0] * workers  # the flags of worker w's last reply read
        self._interrupted: Optional[str] = None  # the call whose wait was cut short, until resumed or reset()
        self._groups = [np.arange(w, n, workers) for w in range(workers)]  # worker w's envs
        self._group_index = {tuple(g.tolist()): w for w, g in enumerate(self._groups)}
        self._conns: List[Connection] = []
        self._procs: List[Any] = []

        ctx = mp.get_context(context)
        self._shared = _Shared(ctx, n, tuple(obs_space.shape), obs_space.dtype)
        same_step = autoreset_mode == AutoresetMode.SAME_STEP
        try:
            for w in range(workers):
                ids = list(range(w, n, workers))
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, name=f"dqnfast-env-worker-{w}", daemon=True,
                                   args=(child, parent, cloudpickle.dumps([env_fns[i] for i in ids]), ids,
                                         self._shared, same_step))
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
                self._owed[w] = True  # the worker reports once its envs are built
            self._collect()  # each worker has built its envs
        except BaseException:
            self.close(terminate=True)
            raise

    def _collect(self, workers: Optional[Sequence[int]] = None) -> int:
        """Reads the reply each of ``workers`` (default: all) still owes and returns the flags of their
        replies, or-ed (those read by an earlier, interrupted call included); a worker's exception
        is raised here with its traceback."""
        workers = range(len(self._conns)) if workers is None else workers
        errors, flags = [], 0
        for w in workers:
            if not self._owed[w]:  # read already, by a wait that was then interrupted
                continue
            try:
                msg = self._conns[w].recv_bytes()
            except (EOFError, OSError):  # the worker died: its end of the pipe is closed or reset
                self._procs[w].join(timeout=5)
                msg = _ERROR + f"worker {w} exited (exit code {self._procs[w].exitcode})".encode()
            self._owed[w] = False
            if msg[:1] == _ERROR:
                errors.append(f"worker {w}:\n{msg[1:].decode(errors='replace')}")
            else:
                self._flags[w] = msg[0]
        if errors:
            self.close(terminate=True)
            raise EnvWorkerError("ProcessVectorEnv: an env failed in a worker process\n" + "\n".join(errors))
        for w in workers:
            flags |= self._flags[w]
        return flags

    def _send(self, w: int, msg: bytes) -> None:
        """Sends a command to worker ``w``, which owes its reply from then on."""
        # Marked before sending: a Ctrl-C between the two must not leave a reply in the pipe that
        # no one expects (the next call would read it as its own).
        self._owed[w] = True
        try:
            self._conns[w].send_bytes(msg)
        except OSError as e:  # the worker is gone (its end of the pipe is closed)
            code = self._procs[w].exitcode
            self.close(terminate=True)
            raise EnvWorkerError(f"ProcessVectorEnv: worker {w} exited (exit code {code}) before a command "
                                 f"could be sent to it ({type(e).__name__})") from e

    def _check_idle(self, what: str, pending: str) -> None:
        """Refuses a new command while an earlier call still waits for its results."""
        if self._waiting:
            if self._interrupted == "step_wait":
                raise RuntimeError(f"ProcessVectorEnv.{what}: step_wait() was interrupted before the step's results "
                                   f"came in; call step_wait() again to get them, or reset()")
            raise RuntimeError(f"ProcessVectorEnv.{what}: call step_wait() for the {pending} first")
        if self._busy:
            raise RuntimeError(f"ProcessVectorEnv.{what}: call recv() for every pending send() first")
        if self._interrupted == "reset":
            raise RuntimeError(f"ProcessVectorEnv.{what}: reset() was interrupted; call reset() again")

    def _check_open(self, what: str) -> None:
        if self.closed:
            raise RuntimeError(f"ProcessVectorEnv.{what}: the env is closed")

    def reset(self, *, seed: Optional[Any] = None, options: Optional[Dict[str, Any]] = None):
        """Resets all envs (or those in ``options["reset_mask"]``). ``seed``: an int seeds env i with
        ``seed + i``; a list gives one seed (or None) per env; None keeps each env's own seeding."""
        self._check_open("reset")
        if self._interrupted is None:  # after an interrupted wait, reset() is the way out
            self._check_idle("reset", "pending step_async()")
        n = self.num_envs
        if seed is None:
            seeds: List[Optional[int]] = [None] * n
        elif isinstance(seed, (list, tuple)):
            if len(seed) != n:
                raise ValueError(f"seed must give one seed per env ({n}), got {len(seed)}")
            seeds = [None if s is None else _index(s, "seed") for s in seed]
        else:
            s0 = _index(seed, "seed")
            seeds = [s0 + i for i in range(n)]
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (n,):
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({n},), got "
                                 f"{mask.dtype} {mask.shape}")
        payload = cloudpickle.dumps((seeds, options or None, mask))
        sh = self._shared
        self._interrupted = "reset"  # (until this reset has all its replies)
        self._collect()  # the replies an interrupted call left unread: dropped, or they would pass for this reset's
        self._waiting = False
        self._busy.clear()
        if mask is not None:  # envs not reset report no episode
            sh.done_episode[~mask] = False
        for w in range(self.num_workers):
            self._send(w, _RESET + payload)
        info: Dict[str, Any] = {}
        if self._collect() & _EPISODE:
            self._add_episode_info(info)
        obs = sh.obs.copy() if self.copy else sh.obs
        self._interrupted = None
        return obs, info

    def step_async(self, actions) -> None:
        """Starts a step of every env; the workers emulate while the caller does other work."""
        self._check_open("step_async")
        self._check_idle("step_async", "pending step")
        self._shared.actions[...] = self._check_actions(actions, self.num_envs)
        self._start_steps(range(self.num_workers))
        self._waiting = True

    def _check_actions(self, actions: Any, n: int) -> np.ndarray:
        a = np.asarray(actions)
        if a.shape != (n,) or not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise ValueError(f"actions must be {n} integers (shape ({n},)), got {a.dtype} array of shape {a.shape}")
        values = a.tolist()  # (min and max of a short list are cheaper in Python than in numpy)
        start, stop = self._action_range
        if min(values) < start or max(values) >= stop:
            raise ValueError(f"actions must be in [{start}, {stop}), got {values}")
        return a

    def _start_steps(self, workers: Sequence[int]) -> None:
        for w in workers:
            self._send(w, _STEP)

    def worker_envs(self, worker: int) -> np.ndarray:
        """The envs worker ``worker`` steps: ``worker, worker + workers, ...``."""
        w = _index(worker, "worker")
        if not 0 <= w < self.num_workers:
            raise IndexError(f"worker must be in [0, {self.num_workers}), got {w}")
        return self._groups[w].copy()

    def send(self, actions, env_ids) -> None:
        """Starts a step of the envs ``env_ids`` only (EnvPool's asynchronous API); ``recv()`` returns
        them as soon as their worker is done, while other workers still emulate.

        ``env_ids`` must be whole worker groups (worker w steps envs ``w, w + workers, ...``, see
        :meth:`worker_envs`), in any order, of workers that are not stepping already; ``actions``
        gives one action per listed env. A caller that acts on each worker's envs as they come back
        keeps every worker busy: no worker waits for a slower one, nor for the replay work done
        between steps."""
        self._check_open("send")
        if self._waiting or self._interrupted == "reset":
            self._check_idle("send", "pending step_async()")
        key = None  # env_ids as a tuple of ints, when it plainly is one (no coercion of floats or bools)
        if isinstance(env_ids, np.ndarray):
            if env_ids.ndim == 1 and env_ids.dtype.kind in "iu":
                key = tuple(env_ids.tolist())
        elif isinstance(env_ids, (list, tuple)) and all(type(i) is int for i in env_ids):
            key = tuple(env_ids)
        w = None if key is None else self._group_index.get(key)
        if w is not None and w not in self._busy:  # one worker's group as worker_envs() gives it: the common case
            self._shared.actions[self._groups[w]] = self._check_actions(actions, len(self._groups[w]))
            self._start_steps((w,))
            self._busy.append(w)
            return
        ids = np.asarray(env_ids)
        if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"env_ids must be a non-empty 1-D sequence of env indices, got {ids.dtype} array of "
                             f"shape {ids.shape}")
        if ids.min() < 0 or ids.max() >= self.num_envs or len(np.unique(ids)) != ids.size:
            raise ValueError(f"env_ids must be distinct envs in [0, {self.num_envs}), got {ids.tolist()}")
        a = self._check_actions(actions, ids.size)
        workers = sorted({int(i) % self.num_workers for i in ids})
        if sum(len(self._groups[w]) for w in workers) != ids.size:
            raise ValueError(f"env_ids must be whole worker groups (worker w steps envs w, w + {self.num_workers}, "
                             f"...: {[self._groups[w].tolist() for w in workers]}), got {ids.tolist()}")
        busy = [w for w in workers if w in self._busy]
        if busy:
            raise RuntimeError(f"ProcessVectorEnv.send: worker(s) {busy} are still stepping; recv() them first")
        self._shared.actions[ids] = a
        self._start_steps(workers)
        self._busy.extend(workers)

    def recv(self):
        """The results of the first pending ``send()`` group to finish (obs, rewards, terminated,
        truncated, info) for its envs only, with ``info["env_id"]`` listing them (in increasing order);
        otherwise as ``step_wait()``: SAME_STEP autoreset with ``final_obs``, episode statistics.
        The arrays are copies."""
        self._check_open("recv")
        if not self._busy:
            raise RuntimeError("ProcessVectorEnv.recv: no send() is pending")
        self._interrupted = "recv"  # (until a group is returned)
        # The longest-waiting of the workers that are done (a poll each is cheaper than wait()'s
        # selector); one whose reply an interrupted recv() read already counts as done.
        w = next((w for w in self._busy if not self._owed[w] or self._conns[w].poll(0)), None)
        if w is None:
            ready = set(wait([self._conns[w] for w in self._busy]))
            w = next(w for w in self._busy if self._conns[w] in ready)
        flags = self._collect([w])
        ids = self._groups[w]
        sh = self._shared
        info: Dict[str, Any] = {"env_id": ids.copy()}
        if flags & _ENDED and self.autoreset_mode == AutoresetMode.SAME_STEP:
            info["final_obs"] = sh.final_obs[ids]
            info["_final_obs"] = sh.terminated[ids] | sh.truncated[ids]
        if flags & _EPISODE:
            self._add_episode_info(info, ids)
        result = sh.obs[ids], sh.rewards[ids], sh.terminated[ids], sh.truncated[ids], info
        self._busy.remove(w)  # only now: a recv() cut short before this returns the group next time
        self._interrupted = None
        return result

    def step_wait(self):
        """The results of the pending ``step_async``: (obs, rewards, terminated, truncated, info)."""
        self._check_open("step_wait")
        if not self._waiting:
            raise RuntimeError("ProcessVectorEnv.step_wait: no step_async() is pending")
        self._interrupted = "step_wait"  # (until the step's results are returned)
        flags = self._collect()
        sh = self._shared
        info: Dict[str, Any] = {}
        if flags & _ENDED and self.autoreset_mode == AutoresetMode.SAME_STEP:
            info["final_obs"] = sh.final_obs.copy()
            info["_final_obs"] = sh.terminated | sh.truncated
        if flags & _EPISODE:
            self._add_episode_info(info)
        result = ((sh.obs.copy() if self.copy else sh.obs), sh.rewards.copy(), sh.terminated.copy(),
                  sh.truncated.copy(), info)
        # Only now: a step_wait() cut short before this (Ctrl-C) is resumed by the next step_wait().
        self._waiting = False
        self._interrupted = None
        return result

    def step(self, actions):
        self.step_async(actions)
        return self.step_wait()

    def _add_episode_info(self, info: Dict[str, Any], ids: Any = slice(None)) -> None:
        sh = self._shared
        mask = sh.done_episode[ids].copy()
        info["episode"] = {"r": np.where(mask, sh.episode_r[ids], 0.0), "l": np.where(mask, sh.episode_l[ids], 0),
                           "t": np.where(mask, sh.episode_t[ids], 0.0)}
        info["_episode"] = mask

    def close(self, terminate: bool = False) -> None:
        """Stops the workers: lets a pending step finish and asks them to exit, or (``terminate``)
        hangs up on them, which ends their wait at once, and kills any that linger."""
        if getattr(self, "closed", True):
            return
        self.closed = True
        if not terminate:
            try:
                for w, conn in enumerate(self._conns):
                    if self._owed[w]:
                        conn.recv_bytes()
            except (EOFError, OSError):
                terminate = True
        # Closing our end alone need not wake a worker: a forked worker holds copies of the pipes
        # made before it. So each is asked to exit, and (terminate) killed if it has not within 1 s.
        for conn in self._conns:
            try:
                conn.send_bytes(_CLOSE)
            except OSError:
                pass
        for proc in self._procs:
            proc.join(timeout=1.0 if terminate else 30.0)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for conn in self._conns:
            conn.close()

    def __del__(self) -> None:
        try:
            self.close(terminate=True)
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"ProcessVectorEnv(num_envs={self.num_envs}, workers={self.num_workers})"
