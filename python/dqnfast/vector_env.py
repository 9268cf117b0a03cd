"""`ProcessVectorEnv`: a gymnasium ``VectorEnv`` that steps its envs in worker processes.

Python threads cannot step ALE in parallel (``ale.act`` holds the GIL), so the envs are split
over ``workers`` processes. Each worker owns a fixed group of envs (env i goes to worker
``i % workers``), steps them one after the other and writes their observations, rewards and flags
straight into shared memory; the main process only passes a one-byte message per worker each way
(and the infos the envs report, with ``infos="all"``). No observation is pickled, and the envs are the very single-env stacks that
``dqnfast.wrappers.make_atari_env`` builds, so env i gives exactly the trajectory the single env
gives for the same seed and actions, whatever its wrappers do at a reset.

``step_async(actions)`` returns at once and ``step_wait()`` collects the results: the main process
can sample a replay batch or run a gradient step while the workers emulate. ``send(actions,
env_ids)`` and ``recv()`` (EnvPool's asynchronous API) step whole worker groups on their own:
``recv()`` returns the first group done, so the caller can act on it and send it off again while
the other workers still emulate, and no worker waits for another.

gymnasium's vector-env contract is kept, as ``SyncVectorEnv`` and ``AsyncVectorEnv`` keep it in
gymnasium 1.4: the spaces are checked when the env is built (``observation_mode``), ``info`` has
gymnasium's layout (``info[key]`` arrays with ``info["_key"]`` masks; in ``SAME_STEP`` autoreset
``final_obs`` is an object array with ``None`` where no episode ended, ``final_info`` holds the
ending step's info), ``call``/``get_attr``/``set_attr``/``render``/``np_random_seed`` reach the
sub-envs, ``step_wait(timeout=)`` raises ``multiprocessing.TimeoutError``, and misuse raises
gymnasium's ``ClosedEnvironmentError``, ``AlreadyPendingCallError`` or ``NoAsyncCallError``.

Autoreset (``metadata["autoreset_mode"]``): ``SAME_STEP`` (default) resets an env inside the step
where its episode ends; the step returns the new episode's first observation, and
``info["final_obs"][i]`` (mask ``info["_final_obs"]``) is the episode's real last observation, so
a replay buffer gets the exact transition and the next episode's start from one step. ``NEXT_STEP``
(gymnasium's default) returns the last observation and resets on the next step instead, ignoring
that step's action and returning reward 0. ``DISABLED`` is refused (a ``ValueError``).

``infos``: ``"all"`` (default) passes every key of every sub-env's info, pickled back from the
workers on the steps where some env reports one. ``"episode"`` passes only the ``episode``
statistics (``r``, ``l``, ``t``, written to shared memory like the frames) and the autoreset
keys, and pickles nothing per step: the layout is the one ``"all"`` gives for envs whose infos
hold only ``episode``. Atari envs report ``lives`` and frame numbers on every step, so ``"all"``
costs a pickle per worker and gymnasium's per-key info assembly per env on every step; the trainer
uses ``"episode"``.

A wait cut short by an exception (Ctrl-C in ``step_wait``, ``recv`` or ``reset``, or a
``step_wait`` timeout) leaves the replies it did not read owed, worker by worker:
``step_wait()``/``recv()`` called again resume and return the interrupted step's results once,
and ``reset()`` reads and drops them before it resets (a ``reset()`` cut short is called again),
so no later call returns an earlier call's results; a new step before either is an
``AlreadyPendingCallError``. The replies of a ``call``/``set_attr`` cut short are read and dropped
by the next command.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import pickle
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Dict, List, NamedTuple, NoReturn, Optional, Sequence, Tuple, Union

import numpy as np

from ._validate import integer, number
from .feed import SAME_STEP, StepFeed

try:
    import cloudpickle
    import gymnasium as gym
    from gymnasium.error import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError
    from gymnasium.spaces import Box, Space
    from gymnasium.spaces.utils import is_space_dtype_shape_equiv
    from gymnasium.vector import AutoresetMode, VectorEnv
    from gymnasium.vector.utils import batch_differing_spaces, batch_space
except ImportError as e:  # pragma: no cover - gymnasium is an optional dependency
    raise ImportError('dqnfast.vector_env needs gymnasium: pip install "dqnfast[atari]"') from e

__all__ = ["ClosedVectorEnvError", "EnvWorkerError", "NoPendingCallError", "PendingCallError", "ProcessVectorEnv",
           "add_same_step"]


def add_same_step(rb: Any, actions: Any, obs: Any, rewards: Any, terminated: Any, truncated: Any,
                  info: Dict[str, Any], envs: Optional[np.ndarray] = None) -> np.ndarray:
    """Writes one SAME_STEP vector step, the actions taken and then what ``step`` returned (obs,
    rewards, terminated, truncated, info), into a replay with one ``add_batch``: row i is env
    ``envs[i]`` (all envs in order when None). An ended episode's transition ends at its real last
    frame (``info["final_obs"]``: gymnasium's object array, or any array with one row per env), and
    ``obs`` (already the next episode's first frame there) starts that env's next episode. Returns
    the envs whose episode ended. (:class:`dqnfast.feed.StepFeed` does the writing.)"""
    feed = StepFeed(len(np.atleast_1d(terminated)), SAME_STEP)
    rows = feed.rows(obs, terminated, truncated, info)
    feed.write(rb, rows, actions, rewards, streams=envs)
    return rows.ended if envs is None else np.asarray(envs)[rows.ended]


class EnvWorkerError(RuntimeError):
    """An env failed in a worker process, or a worker process died; the vector env is closed."""


# gymnasium's errors for a vector env used out of turn; each is a RuntimeError too, as
# ProcessVectorEnv raised RuntimeError for these before it kept gymnasium's contract.
class ClosedVectorEnvError(ClosedEnvironmentError, RuntimeError):
    """The vector env is closed (gymnasium's ``ClosedEnvironmentError``)."""


class PendingCallError(AlreadyPendingCallError, RuntimeError):
    """An earlier call still waits for its results (gymnasium's ``AlreadyPendingCallError``);
    ``name`` is that call: ``"step"``, ``"send"`` or ``"reset"``."""


class NoPendingCallError(NoAsyncCallError, RuntimeError):
    """There are no results to wait for (gymnasium's ``NoAsyncCallError``); ``name`` is the call
    that starts them: ``"step"`` (``step_async``) or ``"send"``."""


_STEP, _RESET, _CALL, _SET_ATTR, _CLOSE, _ERROR, _CALL_FAILED = b"s", b"r", b"k", b"a", b"c", b"e", b"f"
# A worker answers a step or reset with one byte of flags (so the main process need not scan the
# arrays on every step), followed by the pickled infos when _INFOS is set; it answers with _ERROR
# and a traceback when an env fails (and exits). A call or set_attr is answered with b"\0" and the
# pickled results, or with _CALL_FAILED and the pickled exception (the worker carries on).
_ENDED = 1  # some env's episode ended
_EPISODE = 2  # ("episode" infos) some env has top-level episode statistics
_FINAL_EPISODE = 4  # ("episode" infos) some env reset inside the step has statistics for final_info
_INFOS = 8  # ("all" infos) the pickled per-env infos follow the flags
_INFOS_MODES = ("all", "episode")
_NOT_CALLABLE = ("reset", "step", "close")  # they have ProcessVectorEnv methods of their own


def _dumps(obj: Any) -> bytes:
    """Pickles what travels between the processes: plain pickle (4x faster than cloudpickle on a
    small info dict), cloudpickle for what plain pickle cannot (a lambda in an info)."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return cloudpickle.dumps(obj)


class _EpisodeArrays(NamedTuple):
    """Each env's episode statistics (RecordEpisodeStatistics' ``r``, ``l``, ``t``) and whether it has any."""
    mask: np.ndarray
    r: np.ndarray
    l: np.ndarray  # noqa: E741 - RecordEpisodeStatistics' own name
    t: np.ndarray


class _Shared:
    """The arrays main and workers share: one RawArray each, viewed as numpy arrays.

    ``episode`` holds the statistics that go to ``info["episode"]``, ``final_episode`` those of a
    step whose env was reset inside it, which go to ``info["final_info"]["episode"]``."""

    FIELDS = (("actions", np.int64), ("rewards", np.float64), ("terminated", np.bool_), ("truncated", np.bool_))
    EPISODE_FIELDS = (("mask", np.bool_), ("r", np.float64), ("l", np.int64), ("t", np.float64))

    def __init__(self, ctx, num_envs: int, obs_shape: Tuple[int, ...], obs_dtype: np.dtype):
        self.num_envs, self.obs_shape, self.obs_dtype = num_envs, obs_shape, np.dtype(obs_dtype)
        obs_bytes = num_envs * int(np.prod(obs_shape, dtype=np.int64)) * self.obs_dtype.itemsize
        self.raw = {"obs": ctx.RawArray("B", max(obs_bytes, 1)), "final_obs": ctx.RawArray("B", max(obs_bytes, 1))}
        for name, dtype in self._all_fields():
            self.raw[name] = ctx.RawArray("B", num_envs * np.dtype(dtype).itemsize)
        self.arrays()

    @classmethod
    def _all_fields(cls):
        yield from cls.FIELDS
        for prefix in ("episode_", "final_episode_"):
            for name, dtype in cls.EPISODE_FIELDS:
                yield prefix + name, dtype

    def arrays(self) -> None:
        n = self.num_envs
        for name in ("obs", "final_obs"):
            a = np.frombuffer(self.raw[name], np.uint8)[: n * int(np.prod(self.obs_shape, dtype=np.int64))
                                                        * self.obs_dtype.itemsize]
            setattr(self, name, a.view(self.obs_dtype).reshape((n,) + self.obs_shape))
        for name, dtype in self.FIELDS:
            setattr(self, name, np.frombuffer(self.raw[name], dtype))
        for prefix in ("episode", "final_episode"):
            setattr(self, prefix, _EpisodeArrays(*(np.frombuffer(self.raw[f"{prefix}_{name}"], dtype)
                                                   for name, dtype in self.EPISODE_FIELDS)))

    def __getstate__(self) -> Dict[str, Any]:  # RawArrays travel to the worker at its start
        return {"raw": self.raw, "num_envs": self.num_envs, "obs_shape": self.obs_shape, "obs_dtype": self.obs_dtype}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.arrays()


def _worker(conn: Connection, main_end: Connection, env_fns_pickled: bytes, env_ids: List[int], shared: _Shared,
            same_step: bool, all_infos: bool) -> None:
    """Owns envs ``env_ids``: builds them, reports their spaces, then answers messages until closed."""
    # A forked worker holds a copy of the main process's end of its pipe: closed, so that the worker
    # sees end-of-file and exits if the main process dies.
    main_end.close()
    envs: List[gym.Env] = []
    try:
        envs = [fn() for fn in cloudpickle.loads(env_fns_pickled)]
        needs_reset = [False] * len(envs)
        conn.send_bytes(b"\0" + cloudpickle.dumps([(env.observation_space, env.action_space) for env in envs]))
        while True:
            msg = conn.recv_bytes()
            if msg == _STEP:
                conn.send_bytes(_step_envs(envs, env_ids, shared, same_step, all_infos, needs_reset))
            elif msg[:1] == _RESET:  # one message with its arguments, so that no Ctrl-C falls between two
                conn.send_bytes(_reset_envs(envs, env_ids, shared, all_infos, needs_reset,
                                            *cloudpickle.loads(msg[1:])))
            elif msg[:1] == _CALL:
                conn.send_bytes(_call_envs(envs, env_ids, *cloudpickle.loads(msg[1:])))
            elif msg[:1] == _SET_ATTR:
                conn.send_bytes(_set_attr_envs(envs, env_ids, *cloudpickle.loads(msg[1:])))
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


def _step_envs(envs: List[gym.Env], env_ids: List[int], shared: _Shared, same_step: bool, all_infos: bool,
               needs_reset: List[bool]) -> bytes:
    """Steps the worker's envs with their actions from shared memory; the reply to send."""
    flags = 0
    infos: List[Tuple[Dict[str, Any], Optional[Dict[str, Any]]]] = []  # (all_infos) (info, reset_info) per env
    actions = shared.actions.tolist()
    for k, i in enumerate(env_ids):
        env = envs[k]
        reset_info = None  # the info of a reset made inside this step (SAME_STEP)
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
                else:
                    needs_reset[k] = True
        shared.obs[i] = obs
        shared.rewards[i] = reward
        shared.terminated[i] = terminated
        shared.truncated[i] = truncated
        if all_infos:
            infos.append((info, reset_info))
            if info or reset_info:
                flags |= _INFOS
        elif reset_info is None:
            if _write_episode(shared.episode, i, info):
                flags |= _EPISODE
        else:  # as gymnasium lays it out: the ended step's statistics in final_info, the reset's on top
            # (dqnfast's EpisodicLifeEnv: the no-op after a lost life may end the game inside the reset)
            if _write_episode(shared.final_episode, i, info):
                flags |= _FINAL_EPISODE
            if _write_episode(shared.episode, i, reset_info):
                flags |= _EPISODE
    return bytes((flags,)) + _dumps(infos) if flags & _INFOS else bytes((flags,))


def _reset_envs(envs: List[gym.Env], env_ids: List[int], shared: _Shared, all_infos: bool, needs_reset: List[bool],
                seeds: List[Optional[int]], options: Optional[Dict[str, Any]], mask: Optional[np.ndarray]) -> bytes:
    """Resets the worker's envs (those in ``mask``); the reply to send."""
    flags = 0
    infos: List[Optional[Tuple[Dict[str, Any], None]]] = []  # (all_infos) (info, None) per env reset, else None
    for k, i in enumerate(env_ids):
        if mask is not None and not mask[i]:
            infos.append(None)
            continue
        obs, info = envs[k].reset(seed=seeds[i], options=options)
        needs_reset[k] = False
        shared.obs[i] = obs
        if all_infos:
            infos.append((info, None))
            if info:
                flags |= _INFOS
        elif _write_episode(shared.episode, i, info):
            flags |= _EPISODE
    return bytes((flags,)) + _dumps(infos) if flags & _INFOS else bytes((flags,))


def _call_envs(envs: List[gym.Env], env_ids: List[int], name: str, args: tuple, kwargs: dict) -> bytes:
    """``name`` of each env (called with the arguments if it is callable), as gymnasium's vector envs do."""
    results = []
    for env, i in zip(envs, env_ids):
        try:
            attr = env.get_wrapper_attr(name)
            results.append(attr(*args, **kwargs) if callable(attr) else attr)
        except Exception as e:
            return _call_failed(i, e)
    try:
        return b"\0" + _dumps(results)
    except Exception as e:  # a result that cannot be pickled
        return _call_failed(env_ids[0], e)


def _set_attr_envs(envs: List[gym.Env], env_ids: List[int], name: str, values: List[Any]) -> bytes:
    for env, i, value in zip(envs, env_ids, values):
        try:
            env.set_wrapper_attr(name, value)
        except Exception as e:
            return _call_failed(i, e)
    return b"\0" + _dumps(None)


def _call_failed(env: int, error: Exception) -> bytes:
    """The reply for a call that raised in env ``env``: the exception itself, raised again in the main
    process (a RuntimeError with its text where it cannot be pickled), with the worker's traceback."""
    trace = traceback.format_exc()
    try:
        return _CALL_FAILED + _dumps((env, error, trace))
    except Exception:
        return _CALL_FAILED + _dumps((env, RuntimeError(f"{type(error).__name__}: {error}"), trace))


def _write_episode(slots: _EpisodeArrays, i: int, info: Dict[str, Any]) -> bool:
    """Env i's episode statistics into the shared arrays ``slots``; whether it has any."""
    episode = info.get("episode")
    slots.mask[i] = episode is not None
    if episode is not None:
        slots.r[i] = float(np.asarray(episode["r"]))
        slots.l[i] = int(np.asarray(episode["l"]))
        slots.t[i] = float(np.asarray(episode.get("t", 0.0)))
    return episode is not None


def _rows(info: Dict[str, Any], rows: np.ndarray) -> Dict[str, Any]:
    """``info`` (gymnasium's layout: arrays over all envs, nested dicts) for envs ``rows`` only."""
    return {key: _rows(value, rows) if isinstance(value, dict) else value[rows] for key, value in info.items()}


class ProcessVectorEnv(VectorEnv):
    """``ProcessVectorEnv(env_fns, workers=None, *, autoreset_mode=SAME_STEP, copy=True, context=None,
    observation_mode="same", infos="all", step_timeout=None)``

    - ``env_fns``: one callable per env that builds it (pickled with cloudpickle, so closures
      work). Each env needs a fixed-shape ``Box`` observation space and a ``Discrete`` action
      space, the same for all envs (see ``observation_mode``).
    - ``workers``: processes to step them on, ``1 <= workers <= len(env_fns)``; None: one per env.
    - ``copy``: return copies of the observations (default). ``copy=False`` returns views of the
      shared buffer, valid until the next ``step_async``/``reset``: no copy on the hot path for a
      caller that stores them at once (``rb.add_batch``).
    - ``context``: the multiprocessing start method (None: the platform default, as gymnasium's
      ``AsyncVectorEnv``).
    - ``observation_mode``: as gymnasium's vector envs: ``"same"`` (every env's observation space
      equal to env 0's), ``"different"`` (same shape and dtype, other bounds; the batched space
      holds each env's bounds) or a pair ``(observation_space, single_observation_space)``. Envs
      that do not fit are a ``RuntimeError`` when the vector env is built, as are differing action
      spaces.
    - ``infos``: ``"all"`` (every info key, in gymnasium's layout) or ``"episode"`` (only the
      episode statistics and the autoreset keys; nothing pickled per step). See the module's doc.
    - ``step_timeout``: seconds a step may take (None: no limit). A worker that has not answered a
      ``step()``/``step_wait()`` or ``recv()`` by then (hung, or stopped with SIGSTOP) is given up
      on: the env is closed, its workers killed, and ``EnvWorkerError`` names the late workers,
      their envs and processes. ``step_wait(timeout=)`` instead leaves the step pending.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        workers: Optional[int] = None,
        *,
        autoreset_mode: Union[AutoresetMode, str] = AutoresetMode.SAME_STEP,
        copy: bool = True,
        context: Optional[str] = None,
        observation_mode: Union[str, Tuple[Space, Space]] = "same",
        infos: str = "all",
        step_timeout: Optional[float] = None,
    ):
        env_fns = list(env_fns)
        if not env_fns or not all(callable(fn) for fn in env_fns):
            raise ValueError("env_fns must be a non-empty sequence of callables that build one env each")
        n = len(env_fns)
        workers = n if workers is None else integer(workers, "workers")
        if not 1 <= workers <= n:
            raise ValueError(f"workers must be between 1 and num_envs={n} (each worker steps at least one env), "
                             f"got {workers}")
        autoreset_mode = _autoreset_mode(autoreset_mode)
        custom_spaces = _custom_observation_spaces(observation_mode)
        if infos not in _INFOS_MODES:
            raise ValueError(f"infos must be 'all' (every info key, gymnasium's layout) or 'episode' (episode "
                             f"statistics only, nothing pickled per step), got {infos!r}")
        if step_timeout is not None:
            step_timeout = number(step_timeout, "step_timeout (seconds, or None)")
            if not (step_timeout > 0 and math.isfinite(step_timeout)):
                raise ValueError(f"step_timeout must be a finite number of seconds > 0 or None, got {step_timeout:g}")
        self.step_timeout = step_timeout

        # Metadata and spaces from one env built here and closed again (as gymnasium's AsyncVectorEnv
        # does): the shared memory is sized from them before the workers start.
        probe = env_fns[0]()
        try:
            obs_space, act_space = probe.observation_space, probe.action_space
            self.metadata = {**probe.metadata, "autoreset_mode": autoreset_mode}
            self.render_mode = probe.render_mode
            self.spec = probe.spec
        finally:
            probe.close()
        if custom_spaces is not None:
            obs_space = custom_spaces[1]
        if not isinstance(obs_space, Box):
            raise TypeError(f"ProcessVectorEnv needs a Box observation space (its frames go through shared memory "
                            f"with a fixed shape and dtype), got {type(obs_space).__name__}")
        if not isinstance(act_space, gym.spaces.Discrete):
            raise TypeError(f"ProcessVectorEnv needs a Discrete action space (actions go through shared memory as "
                            f"integers), got {type(act_space).__name__}")

        self.num_envs = n
        self.num_workers = workers
        self.autoreset_mode = autoreset_mode
        self.observation_mode = observation_mode
        self.infos = infos
        self.copy = bool(copy)
        self.single_observation_space = obs_space
        self.single_action_space = act_space
        self._action_range = (int(act_space.start), int(act_space.start) + int(act_space.n))
        self.action_space = batch_space(act_space, n)
        self.closed = False
        self._same_step = autoreset_mode == AutoresetMode.SAME_STEP
        self._all_envs = np.arange(n)
        self._waiting = False  # a step_async() whose results step_wait() has not returned yet
        self._busy: List[int] = []  # workers stepping for send(), in the order they were sent
        # Each command gets one reply. A reply is marked read the moment it is read, so that a wait
        # cut short (Ctrl-C, a timeout) knows which replies are still in the pipes: a later
        # step_wait()/recv() reads only those, and reset() drops them, rather than taking them for
        # its own replies.
        self._owed = [False] * workers  # worker w owes a reply not read yet
        self._replies = [b"\0"] * workers  # worker w's last reply read
        self._interrupted: Optional[str] = None  # the call whose wait was cut short, until resumed or reset()
        self._groups = [np.arange(w, n, workers) for w in range(workers)]  # worker w's envs
        self._group_index = {tuple(g.tolist()): w for w, g in enumerate(self._groups)}
        self._conns: List[Connection] = []
        self._procs: List[Any] = []

        ctx = mp.get_context(context)
        self._shared = _Shared(ctx, n, tuple(obs_space.shape), obs_space.dtype)
        try:
            for w in range(workers):
                ids = list(range(w, n, workers))
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, name=f"dqnfast-env-worker-{w}", daemon=True,
                                   args=(child, parent, cloudpickle.dumps([env_fns[i] for i in ids]), ids,
                                         self._shared, self._same_step, infos == "all"))
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
                self._owed[w] = True  # the worker reports its envs' spaces once they are built
            self._collect()
            spaces: List[Any] = [None] * n
            for w in range(workers):
                for i, env_spaces in zip(self._groups[w].tolist(), pickle.loads(self._replies[w][1:])):
                    spaces[i] = env_spaces
            self._check_spaces(spaces)
        except BaseException:
            self.close(terminate=True)
            raise
        if custom_spaces is not None:
            self.observation_space = custom_spaces[0]
        elif observation_mode == "different":
            self.observation_space = batch_differing_spaces([obs for obs, _ in spaces])
        else:
            self.observation_space = batch_space(obs_space, n)

    def _check_spaces(self, spaces: List[Tuple[Space, Space]]) -> None:
        """Every env's spaces against the single spaces, as gymnasium's SyncVectorEnv checks them."""
        single_obs, single_act = self.single_observation_space, self.single_action_space
        for i, (obs, act) in enumerate(spaces):
            if self.observation_mode == "same":
                if obs != single_obs:
                    raise RuntimeError(
                        f"ProcessVectorEnv(..., observation_mode='same') however the sub-environments observation "
                        f"spaces are not equivalent. single_observation_space={single_obs}, sub-environment {i} "
                        f"observation_space={obs}. If this is intentional, use `observation_mode='different'` "
                        f"instead.")
            elif not is_space_dtype_shape_equiv(obs, single_obs):
                raise RuntimeError(
                    f"ProcessVectorEnv(..., observation_mode='different' or custom space) however the "
                    f"sub-environments observation spaces do not share a common shape and dtype, "
                    f"single_observation_space={single_obs}, sub-environment {i} observation space={obs}")
            if act != single_act:
                raise RuntimeError(f"Sub-environment {i}'s action space {act} is not the single_action_space "
                                   f"{single_act}: the actions of all envs are batched into one array")

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
                self._replies[w] = msg
        if errors:
            self.close(terminate=True)
            raise EnvWorkerError("ProcessVectorEnv: an env failed in a worker process\n" + "\n".join(errors))
        for w in workers:
            flags |= self._replies[w][0]
        return flags

    def _late(self, workers: Sequence[int], timeout: float) -> List[int]:
        """Those of ``workers`` that still owe a reply after waiting at most ``timeout`` seconds for
        them; the replies stay owed (nothing is read here)."""
        deadline = time.monotonic() + timeout
        pending = [w for w in workers if self._owed[w]]
        while pending:
            ready = wait([self._conns[w] for w in pending], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            pending = [w for w in pending if self._conns[w] not in ready]
        return pending

    def _wait_ready(self, timeout: Optional[float], what: str) -> None:
        """Waits until every worker that owes a reply has sent it: for at most ``timeout`` seconds,
        after which the call stays pending (``multiprocessing.TimeoutError``); else for at most
        ``step_timeout``, after which the late workers are given up on; else as long as it takes."""
        limit = self.step_timeout if timeout is None else timeout
        late = [] if limit is None else self._late(range(self.num_workers), limit)
        if not late:
            return
        if timeout is None:
            self._give_up(late, what)  # raises EnvWorkerError
        raise mp.TimeoutError(
            f"ProcessVectorEnv.{what}: the step's results did not all come in within {timeout} s. The step "
            f"is still pending: call step_wait() again to get its results, reset() to drop them (both wait "
            f"for the step to finish), or close(terminate=True) to give up on the envs")

    def _give_up(self, late: Sequence[int], what: str) -> NoReturn:
        """``step_timeout`` ran out before workers ``late`` replied: closes the env (killing them)
        and raises EnvWorkerError naming them."""
        named = "; ".join(f"worker {w} (envs {self._groups[w].tolist()}, pid {self._procs[w].pid})" for w in late)
        self.close(terminate=True)
        raise EnvWorkerError(f"ProcessVectorEnv.{what}: no reply within step_timeout={self.step_timeout:g} s from "
                             f"{named}: hung or stopped. The env is closed and its workers killed")

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

    def _check_idle(self, what: str) -> None:
        """Refuses a new command while an earlier call still waits for its results."""
        if self._interrupted == "call":  # an interrupted call()'s results: no one waits for them any more
            self._collect()
            self._interrupted = None
        if self._waiting:
            if self._interrupted == "step_wait":
                raise PendingCallError(f"ProcessVectorEnv.{what}: step_wait() was interrupted or timed out before the "
                                       f"step's results came in; call step_wait() again to get them, or reset()",
                                       "step")
            raise PendingCallError(f"ProcessVectorEnv.{what}: call step_wait() for the pending step_async() first",
                                   "step")
        if self._busy:
            raise PendingCallError(f"ProcessVectorEnv.{what}: call recv() for every pending send() first", "send")
        if self._interrupted == "reset":
            raise PendingCallError(f"ProcessVectorEnv.{what}: reset() was interrupted; call reset() again", "reset")

    def _check_open(self, what: str) -> None:
        if self.closed:
            raise ClosedVectorEnvError(f"ProcessVectorEnv.{what}: the env is closed")

    def reset(self, *, seed: Optional[Any] = None, options: Optional[Dict[str, Any]] = None):
        """Resets all envs (or those in ``options["reset_mask"]``). ``seed``: an int seeds env i with
        ``seed + i``; a list gives one seed (or None) per env; None keeps each env's own seeding."""
        self._check_open("reset")
        if self._interrupted is None:  # after an interrupted wait, reset() is the way out
            self._check_idle("reset")
        n = self.num_envs
        if seed is None:
            seeds: List[Optional[int]] = [None] * n
        elif isinstance(seed, (list, tuple)):
            if len(seed) != n:
                raise ValueError(f"seed must give one seed per env ({n}), got {len(seed)}")
            seeds = [None if s is None else integer(s, "seed") for s in seed]
        else:
            s0 = integer(seed, "seed")
            seeds = [s0 + i for i in range(n)]
        mask = None
        if options is not None:
            if not isinstance(options, Mapping):
                raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
            mask = options.get("reset_mask")
            options = {k: v for k, v in options.items() if k != "reset_mask"}
        if mask is not None:  # checked as gymnasium's vector envs check it, with their messages
            if not isinstance(mask, np.ndarray):
                raise TypeError(f"`options['reset_mask']` must be a numpy array, got {type(mask)}")
            if mask.shape != (n,):
                raise ValueError(f"`options['reset_mask']` must have shape `({n},)`, got {mask.shape}")
            if mask.dtype != np.bool_:
                raise TypeError(f"`options['reset_mask']` must have `dtype=np.bool_`, got {mask.dtype}")
            if not mask.any():
                raise ValueError(f"`options['reset_mask']` must contain a boolean array with at least one True "
                                 f"value, got reset_mask={mask}")
        payload = cloudpickle.dumps((seeds, options, mask))
        sh = self._shared
        self._interrupted = "reset"  # (until this reset has all its replies)
        self._collect()  # the replies an interrupted call left unread: dropped, or they would pass for this reset's
        self._waiting = False
        self._busy.clear()
        if mask is not None:  # envs not reset report no episode
            sh.episode.mask[~mask] = False
        for w in range(self.num_workers):
            self._send(w, _RESET + payload)
        flags = self._collect()
        info: Dict[str, Any] = {}
        if flags & _INFOS:
            info = self._all_infos(range(self.num_workers), self._all_envs, stepped=False, copy=self.copy)
        elif flags & _EPISODE:
            self._add_episode(info, sh.episode, self._all_envs)
        obs = sh.obs.copy() if self.copy else sh.obs
        self._interrupted = None
        return obs, info

    def step_async(self, actions) -> None:
        """Starts a step of every env; the workers emulate while the caller does other work."""
        self._check_open("step_async")
        self._check_idle("step_async")
        self._shared.actions[...] = self._check_actions(actions, self.num_envs)
        self._start_steps(range(self.num_workers))
        self._waiting = True

    def _check_actions(self, actions: Any, n: int) -> np.ndarray:
        a = np.asarray(actions)
        if a.shape != (n,):
            if a.ndim == 0:  # (as gymnasium: not iterable, so not a batch of actions)
                raise TypeError(f"actions must be a sequence of {n} integers, one per env, got a single "
                                f"{type(actions).__name__}")
            raise ValueError(f"actions must be {n} integers (shape ({n},)), got an array of shape {a.shape}")
        if a.dtype.kind not in "iub":
            raise TypeError(f"actions must be integers, got {a.dtype} actions {a.tolist()}")
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
        w = integer(worker, "worker")
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
        if self._waiting or self._interrupted in ("reset", "call"):
            self._check_idle("send")
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
            raise PendingCallError(f"ProcessVectorEnv.send: worker(s) {busy} are still stepping; recv() them first",
                                   "send")
        self._shared.actions[ids] = a
        self._start_steps(workers)
        self._busy.extend(workers)

    def recv(self):
        """The results of the first pending ``send()`` group to finish (obs, rewards, terminated,
        truncated, info) for its envs only, with ``info["env_id"]`` listing them (in increasing order);
        otherwise as ``step_wait()``: the info arrays have one row per listed env. The arrays are
        copies."""
        self._check_open("recv")
        if not self._busy:
            raise NoPendingCallError("ProcessVectorEnv.recv: no send() is pending", "send")
        self._interrupted = "recv"  # (until a group is returned)
        # The longest-waiting of the workers that are done (a poll each is cheaper than wait()'s
        # selector); one whose reply an interrupted recv() read already counts as done.
        w = next((w for w in self._busy if not self._owed[w] or self._conns[w].poll(0)), None)
        if w is None:
            ready = set(wait([self._conns[w] for w in self._busy], self.step_timeout))
            if not ready:  # (only with a step_timeout) no group finished within it
                self._give_up([w for w in self._busy if self._owed[w]], "recv")
            w = next(w for w in self._busy if self._conns[w] in ready)
        flags = self._collect([w])
        ids = self._groups[w]
        sh = self._shared
        info: Dict[str, Any] = {"env_id": ids.copy()}
        info.update(self._step_info((w,), flags, ids, copy=True))
        result = sh.obs[ids], sh.rewards[ids], sh.terminated[ids], sh.truncated[ids], info
        self._busy.remove(w)  # only now: a recv() cut short before this returns the group next time
        self._interrupted = None
        return result

    def step_wait(self, timeout: Optional[float] = None):
        """The results of the pending ``step_async``: (obs, rewards, terminated, truncated, info).

        ``timeout`` (seconds; None waits as long as it takes): a step whose results are not all in
        by then raises ``multiprocessing.TimeoutError`` and stays pending: ``step_wait()`` again
        returns its results, ``reset()`` drops them, and a new step is refused until one of them runs."""
        self._check_open("step_wait")
        if timeout is not None:
            timeout = number(timeout, "timeout (seconds, or None)")
            if not timeout >= 0:
                raise ValueError(f"timeout must be >= 0 seconds, got {timeout:g}")
        if not self._waiting:
            raise NoPendingCallError("ProcessVectorEnv.step_wait: no step_async() is pending", "step")
        self._interrupted = "step_wait"  # (until the step's results are returned)
        self._wait_ready(timeout, "step_wait")
        flags = self._collect()
        sh = self._shared
        info = self._step_info(range(self.num_workers), flags, self._all_envs, copy=self.copy)
        result = ((sh.obs.copy() if self.copy else sh.obs), sh.rewards.copy(), sh.terminated.copy(),
                  sh.truncated.copy(), info)
        # Only now: a step_wait() cut short before this (Ctrl-C) is resumed by the next step_wait().
        self._waiting = False
        self._interrupted = None
        return result

    def step(self, actions):
        self.step_async(actions)
        return self.step_wait()

    def _step_info(self, workers: Sequence[int], flags: int, ids: np.ndarray, copy: bool) -> Dict[str, Any]:
        """The info of the step just read from ``workers``, for envs ``ids``, in gymnasium's layout."""
        if flags & _INFOS:
            return self._all_infos(workers, ids, stepped=True, copy=copy)
        info: Dict[str, Any] = {}
        sh = self._shared
        if flags & _ENDED and self._same_step:
            ended = sh.terminated[ids] | sh.truncated[ids]
            final_obs = np.full(len(ids), None, dtype=object)
            for k in np.flatnonzero(ended).tolist():
                frame = sh.final_obs[ids[k]]
                final_obs[k] = frame.copy() if copy else frame
            final_info: Dict[str, Any] = {}
            if flags & _FINAL_EPISODE:
                self._add_episode(final_info, sh.final_episode, ids, ended)
            info.update(final_obs=final_obs, _final_obs=ended, final_info=final_info, _final_info=ended.copy())
        if flags & _EPISODE:
            self._add_episode(info, sh.episode, ids)
        return info

    def _all_infos(self, workers: Sequence[int], ids: np.ndarray, stepped: bool, copy: bool) -> Dict[str, Any]:
        """Every env's info (``infos="all"``), put together by gymnasium's own ``_add_info`` in the
        order SyncVectorEnv puts it together, so that every key, dtype and mask is the same."""
        sent: Dict[int, Any] = {}  # env -> (info, reset_info), as the worker sent it
        for w in workers:
            reply = self._replies[w]
            if reply[0] & _INFOS:
                sent.update(zip(self._groups[w].tolist(), pickle.loads(reply[1:])))
        info: Dict[str, Any] = {}
        sh = self._shared
        for i in ids.tolist():
            step_info, reset_info = sent.get(i) or ({}, None)
            if stepped and self._same_step and (sh.terminated[i] or sh.truncated[i]):
                frame = sh.final_obs[i].copy() if copy else sh.final_obs[i]
                self._add_info(info, {"final_obs": frame, "final_info": step_info}, i)
                self._add_info(info, reset_info or {}, i)
            else:
                self._add_info(info, step_info, i)
        return info if len(ids) == self.num_envs else _rows(info, ids)

    @staticmethod
    def _add_episode(info: Dict[str, Any], slots: _EpisodeArrays, ids: np.ndarray,
                     only: Optional[np.ndarray] = None) -> None:
        """``info["episode"]`` (``r``, ``l``, ``t``, each with its mask, as gymnasium nests them) and
        ``info["_episode"]`` from the shared statistics of envs ``ids`` (those in ``only``)."""
        mask = slots.mask[ids]
        if only is not None:
            mask &= only
        if not mask.any():
            return
        info["episode"] = {"r": np.where(mask, slots.r[ids], 0.0), "_r": mask.copy(),
                           "l": np.where(mask, slots.l[ids], 0), "_l": mask.copy(),
                           "t": np.where(mask, slots.t[ids], 0.0), "_t": mask.copy()}
        info["_episode"] = mask

    # -- the sub-envs' attributes, as gymnasium's vector envs reach them ----------------------------
    def call(self, name: str, *args: Any, **kwargs: Any) -> Tuple[Any, ...]:
        """Each env's attribute ``name`` (``env.get_wrapper_attr(name)``), called with ``args`` and
        ``kwargs`` if it is callable: a tuple in env order. The results (and an exception raised in
        an env, raised here again with the worker's traceback) travel pickled."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if name in _NOT_CALLABLE:
            raise ValueError(f"ProcessVectorEnv.call({name!r}): use ProcessVectorEnv.{name}() itself (a {name} "
                             f"through call() would bypass the autoreset and the shared frames)")
        msg = _CALL + cloudpickle.dumps((name, args, kwargs))
        return self._ask_workers("call", [msg] * self.num_workers)

    def get_attr(self, name: str) -> Tuple[Any, ...]:
        """Each env's attribute ``name`` (called, if it is a method, as gymnasium's ``get_attr`` does)."""
        return self.call(name)

    def set_attr(self, name: str, values: Any) -> None:
        """Sets attribute ``name`` of each env (``env.set_wrapper_attr``): ``values[i]`` for env i when
        ``values`` is a list or tuple, else the same value for every env."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError("Values must be a list or tuple with length equal to the number of environments. "
                             f"Got `{len(values)}` values for {self.num_envs} environments.")
        self._ask_workers("set_attr", [_SET_ATTR + cloudpickle.dumps((name, [values[i] for i in group]))
                                       for group in self._groups])

    def render(self) -> Tuple[Any, ...]:
        """Each env's ``render()``, in env order (the frames travel pickled)."""
        return self.call("render")

    @property
    def worker_pids(self) -> Tuple[int, ...]:
        """The process ids of the workers (worker w steps envs ``worker_envs(w)``), e.g. to read their CPU time."""
        return tuple(p.pid for p in self._procs)

    @property
    def np_random_seed(self) -> Tuple[int, ...]:
        """Each env's ``np_random_seed``, as gymnasium's vector envs give them."""
        return self.get_attr("np_random_seed")

    @property
    def np_random(self) -> Tuple[np.random.Generator, ...]:
        """Copies of each env's ``np_random`` (they live in the workers)."""
        return self.get_attr("np_random")

    def _ask_workers(self, what: str, msgs: List[bytes]) -> Tuple[Any, ...]:
        """Sends ``msgs[w]`` to each worker w and returns their results in env order; an exception an
        env raised (the first env's, in env order) is raised here."""
        self._check_open(what)
        self._check_idle(what)
        self._interrupted = "call"  # (until every worker has answered)
        for w, msg in enumerate(msgs):
            self._send(w, msg)
        self._collect()
        self._interrupted = None
        results: List[Any] = [None] * self.num_envs
        failures = []
        for w, reply in enumerate(self._replies):
            if reply[:1] == _CALL_FAILED:
                failures.append(pickle.loads(reply[1:]))
            elif what == "call":
                for i, result in zip(self._groups[w].tolist(), pickle.loads(reply[1:])):
                    results[i] = result
        if failures:
            env, error, trace = min(failures, key=lambda f: f[0])
            raise error from RuntimeError(f"ProcessVectorEnv.{what}: env {env} raised this in its worker:\n{trace}")
        return tuple(results)

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
                proc.join(timeout=1.0)
            if proc.is_alive():  # SIGTERM waits while a process is stopped (SIGSTOP); SIGKILL does not
                proc.kill()
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


def _autoreset_mode(mode: Any) -> AutoresetMode:
    if not isinstance(mode, AutoresetMode):
        try:
            mode = AutoresetMode(mode)
        except ValueError:
            raise ValueError(f"autoreset_mode must be AutoresetMode.SAME_STEP or NEXT_STEP, got {mode!r}") from None
    if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP):
        raise ValueError(f"ProcessVectorEnv does not support autoreset_mode={mode}: its workers reset an ended "
                         f"env themselves (SAME_STEP or NEXT_STEP); DISABLED leaves that to reset(reset_mask), "
                         f"which it does not keep apart from a step")
    return mode


def _custom_observation_spaces(mode: Any) -> Optional[Tuple[Space, Space]]:
    """``observation_mode`` checked as gymnasium's vector envs check it: the custom
    (observation_space, single_observation_space) pair it gives, or None for "same" and "different"."""
    if isinstance(mode, tuple) and len(mode) == 2:
        if not isinstance(mode[0], Space) or not isinstance(mode[1], Space):
            raise TypeError(f"Expected both elements of observation_mode to be Spaces, got {type(mode[0])} and "
                            f"{type(mode[1])}")
        return mode
    if isinstance(mode, str) and mode in ("same", "different"):
        return None
    raise ValueError("Invalid `observation_mode`, expected: 'same' or 'different' or tuple of single and batch "
                     f"observation space, actual got {mode}")
