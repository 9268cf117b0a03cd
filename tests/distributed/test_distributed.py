"""dqnfast.distributed: Ape-X-style actors on Ray feeding one learner's replay.

The chunk format, the actors' stepping and the whole-or-nothing writer are tested in this process.
Everything that starts Ray runs in tests/support/ray_netns_run.py inside a private network namespace
(``unshare -n`` with only loopback up), so every packet stays on this machine: one local 2-node
cluster for the ingest, restart, node-loss, priority and per-actor exploration checks, one
single-node Ray for SIGTERM. More behaviour tests (no Ray started): tests/distributed/test_distributed_behaviour.py.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dqnfast
from support.distributed_checks import FakePool, check_replay_exact, steps_held, steps_sent
from dqnfast import ReplayBuffer
from dqnfast.distributed import ActorPool, ChunkWriter, EnvActor, apex_epsilons
from dqnfast.distributed.pool import check_cpus
from dqnfast.distributed.fake_env import CountingPixelVectorEnv, counting_env_fn, decode_frame

SUPPORT = Path(__file__).resolve().parents[1] / "support"
SHAPE = (36, 36)


# ---- without Ray ------------------------------------------------------------------------------
def test_apex_epsilons():
    assert apex_epsilons(1) == [0.4]
    assert apex_epsilons(2) == pytest.approx([0.4, 0.4 ** 8])
    eps = apex_epsilons(8)
    assert eps == pytest.approx([0.4 ** (1 + 7 * i / 7) for i in range(8)])
    assert all(a > b for a, b in zip(eps, eps[1:]))
    assert apex_epsilons(360)[0] == pytest.approx(0.4) and apex_epsilons(360)[-1] == pytest.approx(0.4 ** 8)
    with pytest.raises(ValueError, match="num_actors must be positive"):
        apex_epsilons(0)
    with pytest.raises(TypeError, match="int"):
        apex_epsilons(2.0)
    with pytest.raises(TypeError, match="base must be a number, got str"):
        apex_epsilons(2, base="0.4")
    with pytest.raises(TypeError, match="alpha must be a number, got NoneType"):
        apex_epsilons(2, alpha=None)


def test_bad_counts_are_refused_by_type():
    """A count given as a float or a bool is a TypeError naming it, not a silent 1.5 or True."""
    from dqnfast.distributed import Ingestor

    with pytest.raises(TypeError, match="num_envs must be an int, got float"):
        CountingPixelVectorEnv(2.0)
    with pytest.raises(ValueError, match="num_envs must be positive, got 0"):
        CountingPixelVectorEnv(0)
    rb = ReplayBuffer(1_000, SHAPE, num_envs=2)
    with pytest.raises(TypeError, match="inflight_per_actor must be an int, got bool"):
        Ingestor(FakePool(1, 2), rb, inflight_per_actor=True)
    with pytest.raises(ValueError, match="inflight_per_actor must be positive, got 0"):
        Ingestor(FakePool(1, 2), rb, inflight_per_actor=0)


def _actors(n, k, min_len=3, max_len=9, rounds=10, seed=1, **kw):
    return [EnvActor(i, k, counting_env_fn(min_len, max_len, SHAPE), apex_epsilons(n)[i], frame_shape=SHAPE,
                     rounds_per_chunk=rounds, seed=seed, **kw) for i in range(n)]


def test_chunks_from_actors_are_exact_per_stream():
    actors = _actors(2, 3)
    rb = ReplayBuffer(100_000, SHAPE, num_envs=6)
    writer = ChunkWriter(rb, 2, 3)
    steps = 0
    for i in range(6):
        for a in actors:
            chunk = a.collect(restart_episodes=(i == 3))  # abandons every episode of the actor's streams
            assert chunk["meta"]["seq"] == i and chunk["frames"].dtype == np.uint8
            steps += writer.write(chunk)
    assert steps == 2 * 6 * 10 * 3 == len(rb)
    report = check_replay_exact(rb, 3)
    assert report["actors"] == 2 and report["transitions"] == steps


def test_checker_catches_a_lost_chunk():
    (actor,) = _actors(1, 2)
    rb = ReplayBuffer(10_000, SHAPE, num_envs=2)
    writer = ChunkWriter(rb, 1, 2)
    writer.write(actor.collect())
    actor.collect()  # lost in flight
    writer.write(actor.collect())  # written anyway: the Ingestor never does this
    with pytest.raises(AssertionError):
        check_replay_exact(rb, 2)


def test_a_chunk_goes_in_whole_or_not_at_all():
    (actor,) = _actors(1, 2)
    rb = ReplayBuffer(10_000, SHAPE, num_envs=2)
    writer = ChunkWriter(rb, 1, 2)
    first = actor.collect()
    second = actor.collect()
    with pytest.raises(ValueError, match="without an active episode"):
        writer.write(second)  # its episodes were started in `first`, which this replay never got
    assert rb.writes == 0
    writer.write(first)
    writes = rb.writes
    bad = {**second, "env": second["env"].copy()}
    bad["env"][-1] = bad["env"][-2]  # the last segment names one env twice
    with pytest.raises(ValueError, match="twice"):
        writer.write(bad)
    with pytest.raises(ValueError, match="out of range"):
        writer.write({**second, "env": second["env"] + 5})
    with pytest.raises(ValueError, match="actor 3"):
        writer.write({**second, "meta": {**second["meta"], "actor": 3}})
    with pytest.raises(ValueError, match="frames"):
        writer.write({**second, "frames": second["frames"][:, :10]})
    assert rb.writes == writes
    writer.write(second)
    check_replay_exact(rb, 2)
    with pytest.raises(ValueError, match="num_envs = num_actors \\* envs_per_actor"):
        ChunkWriter(rb, 2, 2)


class _OneCountingEnv:
    """A single env (gymnasium API, no autoreset) on a CountingPixelVectorEnv of one env, so that
    gymnasium's SyncVectorEnv runs it with NEXT_STEP autoreset."""

    def __init__(self, actor: int, seed: int) -> None:
        import gymnasium as gym

        self.inner = CountingPixelVectorEnv(1, actor=actor, seed=seed, frame_shape=SHAPE, min_len=3, max_len=8)
        self.observation_space = gym.spaces.Box(0, 255, SHAPE, np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self.metadata, self.render_mode, self.spec = {}, None, None

    def reset(self, *, seed=None, options=None):
        obs, info = self.inner.reset()
        return obs[0], info

    def step(self, action):
        obs, r, term, trunc, info = self.inner.step(np.array([action]))
        last = info["final_obs"][0] if term[0] or trunc[0] else obs[0]
        return last, float(r[0]), bool(term[0]), bool(trunc[0]), {}

    def close(self):
        pass


def _next_step_env_fn(actor_index, num_envs, seed):
    import gymnasium as gym

    return gym.vector.SyncVectorEnv([lambda i=i: _OneCountingEnv(actor_index, seed + i)
                                     for i in range(num_envs)])


def test_next_step_autoreset_vector_env_is_exact():
    pytest.importorskip("gymnasium")
    actor = EnvActor(0, 3, _next_step_env_fn, 0.3, frame_shape=SHAPE, rounds_per_chunk=12)
    assert actor.feed.mode == "next_step"
    rb = ReplayBuffer(10_000, SHAPE, num_envs=3)
    writer = ChunkWriter(rb, 1, 3)
    for _ in range(5):
        writer.write(actor.collect())
    # the counting envs all say actor 0 env 0 here: streams are told apart by their seeds
    idx = rb.valid_indices()
    assert len(idx) == len(rb) > 100
    b = rb.gather(idx)
    for i in range(len(idx)):
        _, _, seed, ep, step = decode_frame(b.next_obs[i, -1])
        prev = b.obs[i, -1]
        assert decode_frame(prev) == (0, 0, seed, ep, step - 1)
        assert b.reward[i] == step % 7


class _EpisodeCountingEnv(_OneCountingEnv):
    """_OneCountingEnv reporting each episode's return and length as RecordEpisodeStatistics does."""

    def reset(self, *, seed=None, options=None):
        self.ret, self.len = 0.0, 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        self.ret, self.len = self.ret + r, self.len + 1
        if term or trunc:
            info = {"episode": {"r": self.ret, "l": self.len, "t": 0.0}}
        return obs, r, term, trunc, info


def _same_step_env_fn(actor_index, num_envs, seed):
    import gymnasium as gym

    return gym.vector.SyncVectorEnv([lambda i=i: _EpisodeCountingEnv(actor_index, seed + i) for i in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def test_same_step_actor_reports_the_returns_gymnasium_puts_in_final_info():
    """Under SAME_STEP autoreset gymnasium puts an ended step's episode statistics in
    info["final_info"]: the actor reports one return for every episode that ended in its chunks."""
    pytest.importorskip("gymnasium")
    actor = EnvActor(0, 3, _same_step_env_fn, 0.3, frame_shape=SHAPE, rounds_per_chunk=12)
    assert actor.feed.mode == "same_step"
    ended = reported = 0
    for _ in range(3):
        chunk = actor.collect()
        for begin, end, is_start in chunk["segments"]:
            if not is_start:
                ended += int((chunk["terminated"][begin:end] | chunk["truncated"][begin:end]).sum())
        reported += len(chunk["meta"]["episode_returns"])
    assert reported == ended >= 3


def test_prioritized_actor_sends_td_errors():
    torch = pytest.importorskip("torch")
    from dqnfast import PrioritizedReplayBuffer
    from dqnfast.learner import QNetwork

    torch.manual_seed(0)
    net = QNetwork(4, 4, SHAPE)
    (actor,) = _actors(1, 2, rounds=6, net_fn=lambda: QNetwork(4, 4, SHAPE), prioritized=True, gamma=0.9)
    actor.set_weights({k: v.numpy() for k, v in net.state_dict().items()}, 3)
    rb = PrioritizedReplayBuffer(10_000, SHAPE, num_envs=2, alpha=1.0, gamma=0.9)
    writer = ChunkWriter(rb, 1, 2)
    for _ in range(3):
        chunk = actor.collect()
        assert chunk["meta"]["weights_version"] == 3
        writer.write(chunk)
    idx = rb.valid_indices()
    b = rb.gather(idx)
    with torch.no_grad():
        q, qn = net(torch.from_numpy(b.obs)).numpy(), net(torch.from_numpy(b.next_obs)).numpy()
    want = np.abs(b.reward + 0.9 * (1 - b.terminated) * qn.max(1) - q[np.arange(len(idx)), b.action])
    got = np.array([rb._leaf(int(i) % rb.capacity) for i in idx])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_ingestor_drops_a_chunk_after_a_gap_and_resyncs():
    from dqnfast.distributed import Ingestor

    (actor,) = _actors(1, 2)
    rb = ReplayBuffer(10_000, SHAPE, num_envs=2)
    ing = Ingestor(FakePool(1, 2), rb)
    ing._ingest(0, actor.collect())
    actor.collect()  # its reply was lost, but the actor ran it: the next chunk follows a gap
    ing._ingest(0, actor.collect())
    assert ing.stats().dropped_chunks == 1 and ing._resync[0]  # the next request asks for new episodes
    ing._ingest(0, actor.collect())  # a request already queued before the drop: dropped too
    ing._ingest(0, actor.collect(restart_episodes=ing._resync[0]))
    s = ing.stats()
    assert (s.chunks, s.dropped_chunks, s.restarts) == (2, 2, 0) and not ing._resync[0]
    assert len(rb) == s.transitions == 2 * 10 * 2
    check_replay_exact(rb, 2)
    # a restarted actor (a new incarnation; under Ray its seed is salted) opens with new episodes
    # everywhere: written, and counted as a restart
    (again,) = _actors(1, 2, seed=2)
    ing._ingest(0, again.collect())
    assert ing.stats().restarts == 1
    check_replay_exact(rb, 2)


def test_ingestor_writes_a_duplicated_fresh_chunk_once():
    """A chunk that starts every env (an actor's first) delivered twice: the second copy is stale
    and dropped like any other duplicate, and needs no resync (nothing is missing)."""
    from dqnfast.distributed import Ingestor

    (actor,) = _actors(1, 2)
    c = [actor.collect() for _ in range(3)]
    rb = ReplayBuffer(10_000, SHAPE, num_envs=2)
    ing = Ingestor(FakePool(1, 2), rb)
    for chunk in (c[0], c[0], c[1], c[2]):
        ing._ingest(0, chunk)
    s = ing.stats()
    assert (s.chunks, s.dropped_chunks, s.restarts) == (3, 1, 0) and not ing._resync[0]
    assert steps_held(rb) == steps_sent(c[0]) | steps_sent(c[1]) | steps_sent(c[2])
    assert len(rb) == s.transitions == 3 * 10 * 2
    check_replay_exact(rb, 2)  # no episode holds a step twice


def test_ingestor_drops_chunks_of_an_incarnation_it_has_replaced():
    """After a restarted actor's first chunk was written, chunks of its old incarnation that arrive
    late are stale, the one that starts every env included: dropped, and not counted as another
    restart. The new incarnation's chunks go on being written."""
    from dqnfast.distributed import Ingestor

    (old,) = _actors(1, 2)
    (new,) = _actors(1, 2, seed=2)  # a new incarnation, as after a restart (its seed differs)
    o, n = [old.collect() for _ in range(2)], [new.collect() for _ in range(3)]
    rb = ReplayBuffer(10_000, SHAPE, num_envs=2)
    ing = Ingestor(FakePool(1, 2), rb)
    for chunk in (o[0], n[0], n[1], o[0], o[1], n[2]):  # o[0] starts every env; o[1] follows it
        ing._ingest(0, chunk)
    s = ing.stats()
    assert (s.chunks, s.dropped_chunks, s.restarts) == (4, 2, 1) and not ing._resync[0]
    assert steps_held(rb) == steps_sent(o[0]) | steps_sent(n[0]) | steps_sent(n[1]) | steps_sent(n[2])
    assert len(rb) == s.transitions
    check_replay_exact(rb, 2)
    for stream in range(2):  # the streams run on in the new incarnation's episodes
        _, _, seed, _, _ = decode_frame(rb.stacked(stream)[-1])
        assert seed == decode_frame(n[2]["frames"][-1])[2]


@pytest.mark.atari
def test_breakout_actor_chunks_go_into_the_replay():
    pytest.importorskip("ale_py")
    from dqnfast.distributed import AtariEnvFn

    actor = EnvActor(0, 2, AtariEnvFn("ALE/Breakout-v5", max_episode_steps=20), 0.5, rounds_per_chunk=25)
    assert actor.feed.mode == "next_step"  # gymnasium's SyncVectorEnv: NEXT_STEP autoreset
    rb = ReplayBuffer(1_000, num_envs=2)
    writer = ChunkWriter(rb, 1, 2)
    steps = writer.write(actor.collect()) + writer.write(actor.collect())
    assert steps == len(rb) == len(rb.valid_indices()) > 0
    assert steps < 2 * 25 * 2  # episodes ended (20 agent steps at most) and the resets took a round
    b = rb.sample(16)
    assert b.obs.shape == (16, 4, 84, 84) and b.obs.any()


def test_actors_that_cannot_fit_the_cluster_are_refused():
    """More CPUs asked than a cluster has: Ray would queue the extra actors for good and the learner
    would wait on them without a word. A Ray the pool started cannot grow: an error; a joined one
    may (autoscaling): a warning."""
    check_cpus(2, 2, owns_ray=True)
    check_cpus(0.04, 2, owns_ray=True)
    with pytest.raises(ValueError, match="need 4 CPUs but the Ray cluster has 2"):
        check_cpus(4, 2, owns_ray=True)
    with pytest.warns(RuntimeWarning, match="never start"):
        check_cpus(3, 2, owns_ray=False)


def test_pool_arguments_are_checked():
    fn = counting_env_fn()
    with pytest.raises(ValueError, match="num_actors"):
        ActorPool("local", 0, 2, fn)
    with pytest.raises(ValueError, match="needs net_fn"):
        ActorPool("local", 2, 2, fn, prioritized=True)
    with pytest.raises(ValueError, match="2 dicts"):
        ActorPool("local", 2, 2, fn, actor_options=[{}])
    with pytest.raises(TypeError, match="env_fn"):
        ActorPool("local", 2, 2, "ALE/Breakout-v5")
    pool = ActorPool("local", 3, 4, fn)
    assert pool.num_streams == 12 and pool.epsilons == apex_epsilons(3)


# ---- Ray, inside a private network namespace --------------------------------------------------
def _tool(name: str):
    """A system tool by PATH, or in the sbin folders root's PATH may lack."""
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}", f"/usr/bin/{name}")
                                       if os.access(p, os.X_OK)), None)


def _netns_run(scenario: str, out: Path, timeout: float):
    pytest.importorskip("ray", reason='Ray is not installed (pip install "dqnfast[ray]")')
    unshare, ip = _tool("unshare"), _tool("ip")
    if os.geteuid() != 0 or unshare is None or ip is None:
        pytest.skip("needs root with unshare and ip, to run Ray in its own network namespace")
    # the dqnfast this test imported (the source tree with an in-place build, or an installed one)
    where = str(Path(dqnfast.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (where, os.environ.get("PYTHONPATH")) if p)}
    cmd = [unshare, "-n", "sh", "-c", f'"{ip}" link set lo up && exec "{sys.executable}" "{SUPPORT / "ray_netns_run.py"}" '
           f'{scenario} "{out}"']
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), timeout


def _report(out: Path, proc_output: str) -> dict:
    assert out.exists(), f"no report; output:\n{proc_output[-4000:]}"
    report = json.loads(out.read_text())
    assert report["ok"], report.get("error", "") + "\n" + proc_output[-4000:]
    return report


@pytest.fixture(scope="module")
def cluster_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("ray") / "cluster.json"
    proc, timeout = _netns_run("cluster", out, 600)
    output, _ = proc.communicate(timeout=timeout)
    return _report(out, output)


@pytest.mark.slow
def test_cluster_has_two_nodes_and_refuses_a_wrong_token(cluster_report):
    assert cluster_report["nodes"] == 2
    assert cluster_report["wrong_token_refused"]
    assert any("need 5 CPUs but the Ray cluster has 4" in m for m in cluster_report["oversubscribed_warnings"]), \
        cluster_report["oversubscribed_warnings"]


@pytest.mark.slow
def test_ingest_is_exact_across_actor_restarts(cluster_report):
    """Every stage's replay was exact per stream with no gaps (checked in the scenario, the ingest
    paused), and each restart was counted and its new incarnation reached the replay. How much was
    ingested depends on the machine's speed, so the replay may have overwritten its oldest steps:
    only then may it hold fewer than were ingested."""
    st = cluster_report["stages"]
    assert st["steady"]["actors"] == 2
    assert st["after_sigkill"]["restarts"] >= 1 and st["after_sigkill"]["incarnations_seen"] >= 3  # actor 0 again
    assert st["after_ray_kill"]["restarts"] >= 2 and st["after_ray_kill"]["incarnations_seen"] >= 4
    stats = cluster_report["stats"]
    assert stats["restarts"] >= 3
    assert cluster_report["len"] == cluster_report["valid"] == st["final"]["transitions"] > 0
    if cluster_report["overwritten"]:
        assert cluster_report["len"] < stats["transitions"]
    else:  # every step that was ingested is in the replay, and nothing else
        assert cluster_report["len"] == stats["transitions"]
    assert cluster_report["samples"] > 0 and cluster_report["sampler_error"] is None


@pytest.mark.slow
def test_a_lost_worker_node_does_not_stop_the_learner(cluster_report):
    st = cluster_report["stages"]
    assert st["node_lost"]["ingested"] > st["after_ray_kill"]["ingested"]  # fed by actor 0 alone
    # actor 1 back on the new node: an incarnation the replay had not held before
    assert st["node_replaced"]["incarnations_seen"] > st["node_lost"]["incarnations_seen"]
    assert st["node_replaced"]["restarts"] > st["node_lost"]["restarts"]
    assert cluster_report["stats"]["lost_chunks"] >= 1


@pytest.mark.slow
def test_each_actor_explores_with_its_own_apex_epsilon(cluster_report):
    """A default pool of 3 Ray actors acting with a network whose greedy action never changes: the
    share of other actions each takes is its own Ape-X epsilon (0.4, 0.016, 0.00066) times 3/4 (a
    random action is the greedy one a quarter of the time), within 4 binomial standard deviations."""
    ex = cluster_report["exploration"]
    eps = apex_epsilons(3)
    for i, (n, greedy) in enumerate(zip(ex["actions"], ex["greedy"])):
        assert n == 4 * 50 * 2
        p = eps[i] * (ex["num_actions"] - 1) / ex["num_actions"]
        other = n - greedy
        assert abs(other - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1, (
            f"actor {i} took {other} of {n} non-greedy actions; epsilon {eps[i]:.5f} gives {n * p:.1f}")


@pytest.mark.slow
def test_an_actor_constructor_error_reaches_the_learner(cluster_report):
    assert "no such game" in cluster_report["init_error_surfaced"]


@pytest.mark.slow
def test_initial_priorities_come_from_the_published_weights(cluster_report):
    pr = cluster_report["prioritized"]
    assert pr["weights_version"] == 0 and pr["max_rel_err"] < 1e-3 and pr["actors"] == 2


@pytest.mark.slow
def test_sigterm_stops_the_actors_and_writes_a_checkpoint(tmp_path):
    out = tmp_path / "sigterm.json"
    proc, timeout = _netns_run("sigterm", out, 300)
    deadline = time.monotonic() + timeout
    lines = []
    for line in proc.stdout:  # wait until it ingests
        lines.append(line)
        if line.startswith("INGESTING") or time.monotonic() > deadline:
            break
    assert lines and lines[-1].startswith("INGESTING"), "".join(lines)[-4000:]
    # the scenario runs under `unshare ... sh -c 'exec python'`: the Popen child is that python
    os.kill(proc.pid, signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    report = _report(out, "".join(lines) + rest)
    assert report["ray_shut_down"] and report["signals"] == ["SIGTERM"]
    rb = ReplayBuffer.load(report["checkpoint"])
    assert len(rb) == report["transitions"] > 0
    check_replay_exact(rb, 3)


def _update_rows(run_dir: Path):
    """(wall time, agent step, updates) of the run log's charts/updates rows, read here independently."""
    import csv

    with open(run_dir / "scalars.csv", newline="") as f:
        return [(float(r["wall_time"]), int(r["global_step"]), int(float(r["value"])))
                for r in csv.DictReader(f) if r["tag"] == "charts/updates"]


def _check_whole_run(run: dict, warmup: int) -> dict:
    """A run's figure agrees with its checkpoint and its log; returns the checkpoint's config."""
    from dqnfast.checkpoint import load_training_checkpoint

    state = load_training_checkpoint(str(Path(run["run_dir"]) / "checkpoint.pt"))
    assert run["agent_steps"] == state["counters"]["global_step"] > 0
    assert run["updates"] == state["counters"]["updates"] > 0
    rows, w = _update_rows(Path(run["run_dir"])), run["window"]
    inside = [r for r in rows if r[2] >= warmup]  # the rows from the warm-up's last update, to the last
    assert len(inside) == w["rows"] >= 2
    assert (inside[0][:2], inside[-1][:2]) == ((w["from_time"], w["from_step"]), (w["to_time"], w["to_step"]))
    assert w["steps"] == inside[-1][1] - inside[0][1] > 0 and w["updates"] == inside[-1][2] - inside[0][2] > 0
    assert inside[-1][1] <= run["agent_steps"] and inside[-1][2] <= run["updates"]
    assert run["rate"] == w["rate"] == pytest.approx(w["steps"] / (inside[-1][0] - inside[0][0]))
    return state["config"]


@pytest.mark.slow
@pytest.mark.atari
def test_bench_ray_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    proc, timeout = _netns_run("bench", out, 600)
    output, _ = proc.communicate(timeout=timeout)
    bench = _report(out, output)["bench"]
    fake = bench["fake"]
    assert fake["rate"] > 0 and fake["rate_while_sampling"] > 0 and fake["lost_chunks"] == 0
    assert fake["learner_ceiling"]["transitions"] == 2 * 32 * 8 * 2  # 32 chunks per actor, 8 rounds x 2 envs
    assert fake["sample_idle"]["calls"] > 0 and fake["sample_ratio"] > 0
    # the whole-run figure: two training runs whose rates come from their own logs
    whole = bench["whole_run"]
    assert "error" not in whole, whole.get("error")
    single, ray = _check_whole_run(whole["single"], 100), _check_whole_run(whole["ray"], 100)
    assert single["ray"] == "" and (ray["ray"], ray["ray_actors"], ray["envs_per_actor"]) == ("local", 2, 2)
    ray_options = ("ray", "ray_actors", "envs_per_actor", "run_name")
    assert {k: v for k, v in single.items() if k not in ray_options} == {k: v for k, v in ray.items()
                                                                         if k not in ray_options}
    assert (single["total_steps"], single["max_seconds"], single["learning_starts"]) == (1400, 240, 200)
    # bounded by steps, not by the machine's speed: each run stops at its 1,400 steps
    assert whole["single"]["agent_steps"] == 1400 and whole["ray"]["agent_steps"] >= 1400
    assert whole["ratio"] == pytest.approx(whole["ray"]["rate"] / whole["single"]["rate"]) and whole["ratio"] > 0


@pytest.mark.slow
def test_train_with_ray_actors_feeds_the_learner(tmp_path):
    """`dqnfast train --ray local --ray-actors 2 --envs-per-actor 2` (in a network namespace): the
    actors' steps reach the replay, one stream per actor env, the learner keeps to (at most) the
    configured updates per step, and the run ends with a checkpoint whose replay is exact."""
    out = tmp_path / "train.json"
    proc, timeout = _netns_run("train", out, 600)
    output, _ = proc.communicate(timeout=timeout)
    report = _report(out, output)
    c = report["counters"]
    assert c["global_step"] >= 1500
    assert 0 < c["updates"] <= (c["global_step"] - 300) // 4
    assert report["replay_streams"] == 4
    assert report["replay_len"] == report["replay_valid"] > 0


@pytest.mark.slow
@pytest.mark.atari
def test_sigterm_stops_a_ray_training_run_with_a_checkpoint(tmp_path):
    """SIGTERM to `dqnfast train --ray local` (as a job scheduler sends it) once it learns: exit
    status 143, and a checkpoint whose replay holds every step the run counted, exact."""
    out = tmp_path / "train_sigterm.json"
    proc, timeout = _netns_run("train_sigterm", out, 600)
    output, _ = proc.communicate(timeout=timeout)
    report = _report(out, output)
    assert report["train_sigterm_rc"] == 143, report["train_sigterm_output"]
    assert "SIGTERM" in report["train_sigterm_output"]
    r, c = report["train_sigterm"], report["train_sigterm"]["counters"]
    assert c["updates"] > 0 and c["global_step"] > 300
    assert r["replay_streams"] == 4
    # every step the run counted is in the saved replay (it holds them all: 20,000 slots)
    assert r["replay_writes"] >= c["global_step"]
    assert r["replay_len"] == r["replay_valid"] > 0
