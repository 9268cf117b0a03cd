"""Ray scenarios for tests/distributed/test_distributed.py, run inside a private network namespace.

    unshare -n sh -c 'ip link set lo up && python tests/support/ray_netns_run.py SCENARIO OUT.json'

``cluster``: one local 2-node cluster (head + worker, token authentication, no dashboard): a
client with a wrong token is refused; two actors ingest while the learner samples; actor 0's
process is killed, then actor 0 is killed through Ray; the worker node (actor 1's) is removed
and later replaced; a prioritized pool checks the initial priorities against the learner's own
network; a pool of three actors acting with a network whose greedy action never changes shows
how often each explores. The replay is checked exact after each stage (with the ingest paused: how
much arrives between stages depends on the machine's speed, so the replay may overwrite its oldest
steps, and nothing asserted depends on how much). ``sigterm``: a single-node local Ray feeds
a replay until SIGTERM, then stops the actors and saves the replay as the checkpoint.
``train_sigterm``: `dqnfast train --ray local` gets SIGTERM once it learns. ``bench``:
a tiny `dqnfast bench ray`, its whole-run figure's training runs kept beside OUT.json (``runs/``).
Writes a JSON report to OUT.json; assertions fail the run (exit status 1).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for support.*

from support.distributed_checks import check_replay_exact  # noqa: E402

from dqnfast import PrioritizedReplayBuffer, ReplayBuffer  # noqa: E402
from dqnfast.distributed import ActorPool, Ingestor, StopOnSignals, ensure_token_auth  # noqa: E402
from dqnfast.distributed.fake_env import counting_env_fn  # noqa: E402

SHAPE = (36, 36)
K = 3


def only_loopback() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def wait_for(cond, what: str, timeout: float = 120.0) -> None:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class Sampler(threading.Thread):
    """The learner's side: sample(32) in a loop while the ingestor writes."""

    def __init__(self, rb) -> None:
        super().__init__(daemon=True)
        self.rb, self.stop, self.count, self.error = rb, threading.Event(), 0, None

    def run(self) -> None:
        try:
            per = isinstance(self.rb, PrioritizedReplayBuffer)
            out = self.rb.empty_prioritized_batch(32) if per else self.rb.empty_batch(32)
            while not self.stop.is_set():
                if len(self.rb):
                    self.rb.sample(32, out=out)
                    self.count += 1
                else:
                    time.sleep(0.001)
        except BaseException as e:
            self.error = e


def wrong_token_refused(address: str) -> bool:
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    code = ("import ray, sys\n"
            "try:\n ray.init(address=sys.argv[1], logging_level='ERROR'); print('CONNECTED')\n"
            "except Exception as e: print('REFUSED', type(e).__name__)\n")
    try:
        out = subprocess.run([sys.executable, "-c", code, address], env=env, capture_output=True, text=True,
                             timeout=60).stdout
    except subprocess.TimeoutExpired:
        return True  # never got in
    return "CONNECTED" not in out


def scenario_cluster(report: dict) -> None:
    import ray
    from ray.cluster_utils import Cluster

    ensure_token_auth()
    assert os.environ["RAY_AUTH_MODE"] == "token"
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=2, resources={"head": 100}, include_dashboard=False, node_ip_address="127.0.0.1"))
    worker = cluster.add_node(num_cpus=2, resources={"worker": 100}, node_ip_address="127.0.0.1")
    ray.init(address=cluster.address, logging_level="WARNING")
    report["cluster_start_s"] = time.perf_counter() - t0
    report["nodes"] = sum(n["Alive"] for n in ray.nodes())
    report["wrong_token_refused"] = wrong_token_refused(cluster.address)
    # 5 actors of 1 CPU on a 4-CPU cluster that this process joined: one could never start, so the
    # pool says so (a warning: a joined cluster may grow)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ActorPool(None, 5, 1, counting_env_fn(4, 30, SHAPE), frame_shape=SHAPE).start().stop()
    report["oversubscribed_warnings"] = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]

    pool = ActorPool(None, 2, K, counting_env_fn(4, 30, SHAPE), frame_shape=SHAPE, rounds_per_chunk=16, seed=5,
                     num_cpus_per_actor=0.5, actor_options=[{"resources": {"head": 1}}, {"resources": {"worker": 1}}])
    rb = ReplayBuffer(200_000, SHAPE, num_envs=pool.num_streams)
    pool.start()
    ing = Ingestor(pool, rb).start()
    sampler = Sampler(rb)
    sampler.start()
    stages = {}

    def progress(n: int, what: str, timeout: float = 120.0) -> None:
        goal = ing.stats().transitions + n
        wait_for(lambda: (ing.check(), ing.stats().transitions >= goal)[1], what, timeout)

    t_stage = [time.perf_counter()]
    seen = set()  # (actor, seed) of every incarnation found in the replay at some stage

    def stage(name: str) -> None:
        # How much is ingested between stages depends on the machine's speed (the waits for a restart
        # or a node are timed), so the replay may overwrite its oldest steps: each check runs with the
        # ingest paused (a still replay, checked whole: exactness per stream tolerates overwriting) and
        # the stage keeps the ingest's own counts beside the replay's.
        with ing.paused():
            exact = check_replay_exact(rb, K)
            s = ing.stats()
        seen.update(map(tuple, exact.pop("incarnation_ids")))
        stages[name] = {**exact, "incarnations_seen": len(seen), "ingested": s.transitions, "restarts": s.restarts,
                        "seconds": round(time.perf_counter() - t_stage[0], 2)}
        t_stage[0] = time.perf_counter()

    try:
        wait_for(lambda: (ing.check(), ing.actors_heard == 2)[1], "chunks from both actors")
        progress(300, "first transitions")
        stage("steady")

        # 1. the actor's process dies: Ray restarts it, ingest goes on with a new incarnation
        pid = ray.get(pool.actors[0].pid.remote())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: ing.stats().restarts >= 1, "actor 0 restarted after SIGKILL")
        progress(300, "transitions after the restart")
        stage("after_sigkill")
        # 2. killed through Ray, restart allowed
        ray.kill(pool.actors[0], no_restart=False)
        wait_for(lambda: ing.stats().restarts >= 2, "actor 0 restarted after ray.kill")
        progress(300, "transitions after ray.kill")
        stage("after_ray_kill")
        # 3. the worker node is lost: actor 1 cannot run anywhere, actor 0 keeps the learner fed
        lost_before = ing.stats().lost_chunks
        cluster.remove_node(worker)
        wait_for(lambda: ing.stats().lost_chunks > lost_before, "actor 1's requests failing")
        progress(300, "transitions with the worker node gone")
        stage("node_lost")
        # ...and a replacement node brings actor 1 back
        restarts = ing.stats().restarts
        cluster.add_node(num_cpus=2, resources={"worker": 100}, node_ip_address="127.0.0.1")
        wait_for(lambda: ing.stats().restarts > restarts, "actor 1 restarted on the new node", timeout=180)
        progress(300, "transitions after the new node joined")
    finally:  # a failure above must not leave the ingest thread writing while the process exits
        sampler.stop.set()
        sampler.join()
        try:
            ing.stop()
        finally:
            pool.stop()
    stage("node_replaced")
    stages["final"] = check_replay_exact(rb, K)  # quiescent: len == validity scan
    stages["final"].pop("incarnation_ids")
    s = ing.stats()
    # frame slots written (steps and episode starts): past capacity, the oldest steps were overwritten
    overwritten = rb.writes > rb.capacity
    report.update(stages=stages, stats={k: v for k, v in vars(s).items() if not k.startswith("episode_")},
                  samples=sampler.count, sampler_error=repr(sampler.error) if sampler.error else None,
                  len=len(rb), valid=int(len(rb.valid_indices())), overwritten=overwritten)
    assert sampler.error is None, sampler.error
    if not overwritten:  # every step ingested is there, and nothing else
        assert len(rb) == s.transitions, (len(rb), s.transitions)

    report["init_error_surfaced"] = init_error_surfaced()
    report["prioritized"] = prioritized_check()
    report["exploration"] = exploration_check()
    ray.shutdown()
    cluster.shutdown()


def failing_env_fn(actor_index, num_envs, seed):
    raise RuntimeError("no such game")


def init_error_surfaced() -> str:
    """An actor whose constructor raises is an error for the learner, not a fault to retry forever."""
    pool = ActorPool(None, 1, 2, failing_env_fn, frame_shape=SHAPE, num_cpus_per_actor=0.5).start()
    ing = Ingestor(pool, ReplayBuffer(1000, SHAPE, num_envs=2)).start()
    try:
        wait_for(lambda: ing.error is not None, "the constructor's error")
        try:
            ing.check()
        except RuntimeError as e:
            assert "no such game" in str(e.__cause__), e.__cause__
            return f"{type(e.__cause__).__name__} raised by check(), from the constructor's 'no such game'"
        raise AssertionError("check() did not raise")
    finally:
        try:
            ing.stop()
        except RuntimeError:  # the same error again
            pass
        pool.stop()


def tiny_net():
    from dqnfast.learner import QNetwork

    import torch

    torch.manual_seed(0)
    return QNetwork(4, 4, SHAPE)


def prioritized_check() -> dict:
    """Initial priorities arrive with the transitions and equal |TD error| under the published weights."""
    import torch

    torch.set_num_threads(1)
    pool = ActorPool(None, 2, 2, counting_env_fn(4, 12, SHAPE), net_fn=tiny_net, prioritized=True,
                     frame_shape=SHAPE, rounds_per_chunk=8, gamma=0.9, num_cpus_per_actor=0.5)
    rb = PrioritizedReplayBuffer(50_000, SHAPE, num_envs=pool.num_streams, alpha=1.0, gamma=0.9)
    net = tiny_net()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))  # differ from the actors' initial weights
    pool.start()
    version = pool.publish_weights(net.state_dict())
    ing = Ingestor(pool, rb).start()
    wait_for(lambda: (ing.check(), ing.actors_heard == 2)[1],
             "prioritized chunks from both actors")
    wait_for(lambda: (ing.check(), ing.stats().transitions >= 300)[1], "prioritized transitions")
    ing.stop()
    pool.stop()
    exact = check_replay_exact(rb, 2)
    idx = rb.valid_indices()
    b = rb.gather(idx)
    with torch.no_grad():
        q = net(torch.from_numpy(b.obs)).numpy()
        qn = net(torch.from_numpy(b.next_obs)).numpy()
    want = np.abs(b.reward + 0.9 * (1 - b.terminated) * qn.max(1) - q[np.arange(len(idx)), b.action])
    got = np.array([rb._leaf(int(i) % rb.capacity) for i in idx])
    err = float(np.max(np.abs(got - want) / (np.abs(want) + 1e-3)))
    assert err < 1e-3, f"initial priorities differ from the TD errors under weights v{version}: rel err {err}"
    return {**exact, "max_rel_err": err, "weights_version": version}


GREEDY = 2  # the action constant_q_net prefers, of 4


def constant_q_net():
    """A Q-network whose greedy action is GREEDY in every state (an actor's net_fn; defined here, in
    __main__, so Ray ships it to the actors by value)."""
    import torch

    class ConstantQ(torch.nn.Module):
        def forward(self, x):
            q = torch.zeros(x.shape[0], 4)
            q[:, GREEDY] = 1.0
            return q

    return ConstantQ()


def exploration_check() -> dict:
    """What each actor of a default 3-actor pool does with a network whose greedy action never
    changes: its actions, counted per actor (the test compares the share of non-greedy ones with
    that actor's own Ape-X epsilon)."""
    import ray

    pool = ActorPool(None, 3, 2, counting_env_fn(4, 30, SHAPE), net_fn=constant_q_net, frame_shape=SHAPE,
                     rounds_per_chunk=50, seed=9, num_cpus_per_actor=0.5).start()
    try:
        # four chunks per actor (an actor runs its requests in order): 4 x 50 rounds x 2 envs actions
        chunks = ray.get([actor.collect.remote() for actor in pool.actors for _ in range(4)])
    finally:
        pool.stop()
    actions, greedy = [0] * 3, [0] * 3
    for c in chunks:
        seg = c["segments"]
        a = c["action"][~np.repeat(seg[:, 2].astype(bool), seg[:, 1] - seg[:, 0])]
        actions[c["meta"]["actor"]] += len(a)
        greedy[c["meta"]["actor"]] += int(np.sum(a == GREEDY))
    return {"actions": actions, "greedy": greedy, "num_actions": 4}


def scenario_sigterm(report: dict, run_dir: str) -> None:
    """Feed until SIGTERM; then stop the actors and write the checkpoint (the replay)."""
    pool = ActorPool("local", 2, K, counting_env_fn(4, 30, SHAPE), frame_shape=SHAPE, rounds_per_chunk=16,
                     num_cpus=2, num_cpus_per_actor=0.5)
    rb = ReplayBuffer(100_000, SHAPE, num_envs=pool.num_streams)
    with pool, StopOnSignals() as stop:  # after ray.init, which installs its own SIGTERM handler
        with Ingestor(pool, rb) as ing:
            wait_for(lambda: (ing.check(), ing.stats().transitions >= 200)[1], "first transitions")
            print("INGESTING", flush=True)
            while not stop.wait(0.05):
                ing.check()
        report["signals"] = list(stop.received)
    import ray

    path = os.path.join(run_dir, "replay.ckpt")
    rb.save(path)
    report.update(checkpoint=path, transitions=ing.stats().transitions, ray_shut_down=not ray.is_initialized())


def scenario_train(report: dict, run_dir: str) -> None:
    """`dqnfast train --ray local`: 2 actors x 2 Breakout envs feed the learner's replay; the run
    ends with its checkpoint, learning curve and evaluation like any other."""
    from dqnfast import checkpoint as ckpt
    from dqnfast.train import main as train_main

    rc = train_main(["--ray", "local", "--ray-actors", "2", "--envs-per-actor", "2", "--total-steps", "1500",
                     "--frame-size", "36", "--buffer-size", "5000", "--batch-size", "8", "--learning-starts", "300",
                     "--ray-weights-interval", "20", "--eval-episodes", "1", "--no-progress", "--no-tensorboard",
                     "--torch-threads", "1", "--device", "cpu", "--checkpoint-interval", "1000", "--log-interval", "10",
                     "--run-dir", run_dir, "--run-name", "ray"])
    assert rc == 0, rc
    state = ckpt.load_training_checkpoint(os.path.join(run_dir, "ray", "checkpoint.pt"))
    rb = ReplayBuffer.load(os.path.join(run_dir, "ray", state["replay"]))
    report.update(counters=state["counters"], replay_len=len(rb), replay_valid=len(rb.valid_indices()),
                  replay_streams=rb.num_envs, replay_writes=rb.writes)


def scenario_train_sigterm(report: dict, run_dir: str) -> None:
    """`dqnfast train --ray local` as a job scheduler runs it: SIGTERM once it learns. The trainer
    stops its actors and writes a checkpoint with the replay, and exits with 143."""
    from dqnfast import checkpoint as ckpt

    cmd = [sys.executable, "-m", "dqnfast.train", "--ray", "local", "--ray-actors", "2", "--envs-per-actor", "2",
           "--total-steps", "100000000", "--frame-size", "36", "--buffer-size", "20000", "--batch-size", "8",
           "--learning-starts", "300", "--no-progress", "--no-tensorboard", "--torch-threads", "1",
           "--device", "cpu", "--checkpoint-interval", "0", "--log-interval", "5", "--run-dir", run_dir,
           "--run-name", "ray_sigterm"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    scalars = os.path.join(run_dir, "ray_sigterm", "scalars.csv")
    try:
        wait_for(lambda: proc.poll() is not None or (os.path.exists(scalars) and "charts/updates" in open(scalars).read()),
                 "the trainer's first updates", 180)
        assert proc.poll() is None, f"the trainer exited early ({proc.returncode})"
    except BaseException as e:
        proc.kill()
        raise RuntimeError(f"{e}; trainer output:\n" + proc.communicate()[0][-3000:]) from e
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    report["train_sigterm_rc"] = proc.returncode
    report["train_sigterm_output"] = output[-2000:]
    state = ckpt.load_training_checkpoint(os.path.join(run_dir, "ray_sigterm", "checkpoint.pt"))
    rb = ReplayBuffer.load(os.path.join(run_dir, "ray_sigterm", state["replay"]))
    report["train_sigterm"] = dict(counters=state["counters"], replay_len=len(rb), replay_valid=len(rb.valid_indices()),
                                   replay_streams=rb.num_envs, replay_writes=rb.writes)


def main() -> int:
    scenario, out = sys.argv[1], sys.argv[2]
    if not only_loopback():
        print("refusing to run: start me inside a private network namespace (unshare -n)", file=sys.stderr)
        return 2
    report: dict = {"scenario": scenario}
    try:
        if scenario == "cluster":
            scenario_cluster(report)
        elif scenario == "bench":  # `dqnfast bench ray`, tiny: it runs and reports every figure
            import contextlib
            import io

            from dqnfast.benchmarks import ray_ingest as ray_bench

            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                # the whole-run figure's training runs stay in OUT's folder for the test to read back
                rc = ray_bench.main(["--actors", "2", "--envs-per-actor", "2", "--seconds", "1", "--rounds", "8",
                                      "--capacity", "20000", "--env", "fake", "--train-seconds", "240",
                                      "--train-steps", "1400", "--train-warmup-updates", "100",
                                      "--train-learning-starts", "200",
                                      "--train-dir", os.path.join(os.path.dirname(os.path.abspath(out)), "runs"),
                                      "--json"])
            assert rc == 0, rc
            report["bench"] = json.loads(buf.getvalue())
        elif scenario == "sigterm":
            scenario_sigterm(report, os.path.dirname(os.path.abspath(out)))
        elif scenario == "train":
            scenario_train(report, os.path.dirname(os.path.abspath(out)))
        elif scenario == "train_sigterm":
            scenario_train_sigterm(report, os.path.dirname(os.path.abspath(out)))
        else:
            raise SystemExit(f"unknown scenario {scenario!r}")
        report["ok"] = True
    except BaseException as e:
        import traceback

        report["ok"] = False
        report["error"] = "".join(traceback.format_exception(e))
    with open(out, "w") as f:
        json.dump(report, f, indent=1, default=str)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
