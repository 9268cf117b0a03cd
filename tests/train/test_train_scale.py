"""The trainer's scale-out options: SIGTERM and time budgets end a run with a checkpoint, update modes,
the device replay, the actor's network refresh interval, and the course preset."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")
pytest.importorskip("ale_py")

from dqnfast import checkpoint as ckpt  # noqa: E402
from dqnfast.config import preset  # noqa: E402
from dqnfast.learner import DQNLearner  # noqa: E402
from dqnfast.train import Trainer  # noqa: E402
from dqnfast.train.learning import update_mode  # noqa: E402
from support.tiny_config import tiny as train_parts_tiny  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]  # slow: trainer runs with env workers, async actors and faults


def tiny(tmp_path, **changes):
    """The tiny demo config (tests/support/tiny_config.py), on the CPU."""
    return train_parts_tiny(tmp_path, **{"device": "cpu", **changes})


def test_sigterm_stops_the_run_with_a_checkpoint(tmp_path):
    """`kill -TERM` as a scheduler sends it: the trainer stops, writes its checkpoint (with the replay
    snapshot) and exits with the shell's code for SIGTERM, as on Ctrl-C (130)."""
    run = tmp_path / "run"
    code = ("import sys; from dqnfast.train import main; sys.exit(main(sys.argv[1:]))")
    args = ["--frame-size", "36", "--buffer-size", "2000", "--batch-size", "8", "--learning-starts", "100",
            "--total-steps", "10000000", "--eval-episodes", "0", "--no-progress", "--torch-threads", "1",
            "--no-tensorboard", "--checkpoint-interval", "0", "--log-interval", "1", "--device", "cpu",
            "--run-dir", str(tmp_path), "--run-name", "run"]
    import dqnfast  # the dqnfast under test (installed in CI, an in-place build in a checkout)
    where = os.path.dirname(os.path.dirname(dqnfast.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (where, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        # wait until it learns: the scalars log gets its first loss records
        while not ((run / "scalars.csv").exists() and "losses/td_loss" in (run / "scalars.csv").read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never started learning"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]  # the shell's code for "ended by SIGTERM"
    assert "terminated (SIGTERM): writing a checkpoint" in out + err
    state = ckpt.load_training_checkpoint(str(run / "checkpoint.pt"))
    step = state["counters"]["global_step"]
    assert 100 < step < 10_000_000 and state["counters"]["updates"] > 0
    assert (run / state["replay"]).exists()


@pytest.mark.parametrize("async_actor", [False, True], ids=["sync", "async"])
def test_max_seconds_ends_the_run_like_its_end(tmp_path, async_actor):
    """A spent time budget stops the run early, but as a finished run: checkpoint, curve, evaluation."""
    cfg = tiny(tmp_path, total_steps=10_000_000, max_seconds=3.0, async_actor=async_actor, eval_episodes=1)
    summary = Trainer(cfg, "demo").run()
    assert summary["time_limit_reached"] and not summary["interrupted"]
    assert 0 < summary["global_step"] < cfg.total_steps
    assert len(summary["eval_returns"]) == 1
    state = ckpt.load_training_checkpoint(summary["checkpoint"])
    assert state["counters"]["global_step"] == summary["global_step"]


def test_update_mode_auto_is_eager_on_cpu_and_graph_needs_cuda(tmp_path):
    lrn = DQNLearner(4, frame_shape=(36, 36), device="cpu")
    assert update_mode(tiny(tmp_path), lrn) == "eager"
    assert update_mode(tiny(tmp_path, update_mode="compile"), lrn) == "compile"
    assert update_mode(tiny(tmp_path, recurrent=True), lrn) == "eager"
    for changes in (dict(prioritized=True), dict(reset_interval=5)):  # the compiled step takes both
        assert update_mode(tiny(tmp_path, update_mode="compile", **changes), lrn) == "compile"
    # on CUDA, auto is the one captured graph, except where it cannot hold the step: then eager
    on_cuda = types.SimpleNamespace(device=torch.device("cuda"))
    assert update_mode(tiny(tmp_path), on_cuda) == "graph"
    assert update_mode(tiny(tmp_path, prioritized=True), on_cuda) == "eager"
    assert update_mode(tiny(tmp_path, reset_interval=5), on_cuda) == "eager"
    with pytest.raises(ValueError, match="CUDA"):
        Trainer(tiny(tmp_path, update_mode="graph"), "demo")
    with pytest.raises(ValueError, match="bf16 needs"):
        tiny(tmp_path, update_mode="eager", bf16=True)
    with pytest.raises(ValueError, match="recurrent"):
        tiny(tmp_path, recurrent=True, update_mode="graph")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_replay_device_cuda_without_cuda_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="CUDA is not available"):
        Trainer(tiny(tmp_path, replay_device="cuda"), "demo")


def test_a_device_replay_batch_gives_the_update_of_the_same_host_batch():
    """DeviceReplayBuffer.sample returns tensors already on the learner's device; the learner's update
    on them equals its update on the host batch of the same draws."""
    from dqnfast.torch_replay import DeviceReplayBuffer
    rng = np.random.default_rng(0)
    bufs = [DeviceReplayBuffer(300, (36, 36), stack=4, seed=3, device="cpu") for _ in range(2)]
    frames = rng.integers(0, 256, (250, 36, 36), dtype=np.uint8)
    for rb in bufs:
        rb.start_episode(frames[0])
        for i in range(1, 250):
            rb.add(i % 4, float(i % 3), frames[i], i % 60 == 0)
            if i % 60 == 0:
                rb.start_episode(frames[i])
    a = DQNLearner(4, frame_shape=(36, 36), device="cpu", seed=0)
    b = DQNLearner(4, frame_shape=(36, 36), device="cpu", seed=0)
    for _ in range(3):
        ma = a.update(bufs[0].sample(16))
        mb = b.update(bufs[1].sample_numpy(16))
        assert ma == mb
    for pa, pb in zip(a.q_network.parameters(), b.q_network.parameters()):
        assert torch.equal(pa, pb)


def test_async_actor_refreshes_its_network_every_k_updates(tmp_path, monkeypatch):
    from dqnfast.train import actor as actor_mod
    refreshes = []
    original = actor_mod.NetworkCopy.refresh
    monkeypatch.setattr(actor_mod.NetworkCopy, "refresh", lambda self, src: (refreshes.append(1), original(self, src)))
    summary = Trainer(tiny(tmp_path, total_steps=500, async_actor=True, actor_sync_interval=5), "demo").run()
    assert summary["updates"] == (500 - 100) // 4
    assert len(refreshes) == summary["updates"] // 5


def test_course_preset_follows_the_notebook(tmp_path):
    """The course notebook: rows 31-195, gray = mean of R, G, B, 80x80 nearest, a gradient step on every
    step, the target copied every 100 steps, squared error; Nature elsewhere."""
    cfg = preset("course")
    assert (cfg.crop, cfg.frame_size, cfg.interp, cfg.gray) == ((31, 195, 0, 160), 80, "nearest", "mean")
    assert (cfg.train_frequency, cfg.target_update_interval, cfg.loss) == (1, 100, "mse")
    nature = preset("nature")
    assert (cfg.optimizer, cfg.gamma, cfg.batch_size, cfg.stack, cfg.end_epsilon) == (
        nature.optimizer, nature.gamma, nature.batch_size, nature.stack, nature.end_epsilon)
    from dqnfast.envs import make_env
    from dqnfast.preprocessing import preprocess
    env = make_env(cfg.replace(noop_max=0), num_envs=1, seed=0)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (80, 80)
        # the frame the agent sees is the notebook's: crop, mean of the colour channels, nearest 80x80
        ale = env.unwrapped.ale
        rgb = ale.getScreenRGB()
        expected = preprocess(rgb, crop=(31, 195, 0, 160), size=(80, 80), interp="nearest", gray="mean")
        # after a reset (FIRE, no no-ops) the last two screens are max-pooled; the ball may move, the rest not
        assert np.mean(obs == expected) > 0.99
    finally:
        env.close()


def test_env_workers_feed_the_replay_and_keep_the_update_ratio(tmp_path):
    """Two envs on two worker processes: the learner's updates run while the workers emulate, and
    the run ends with the configured number of updates and an exact replay."""
    cfg = tiny(tmp_path, total_steps=600, num_envs=2, env_workers=2)
    trainer = Trainer(cfg, "demo")
    assert trainer.actor.overlaps and type(trainer.env).__name__ == "ProcessVectorEnv"
    summary = trainer.run()
    assert summary["global_step"] == 600
    assert summary["updates"] == (600 - 100) // 4
    rb = trainer.rb
    assert len(rb) == len(rb.valid_indices()) > 0
    starts = rb.writes - 600  # every write that is not a step started an episode, at least one per env
    assert starts >= 2


def test_a_dead_env_worker_stops_the_run_with_a_checkpoint(tmp_path):
    """A worker killed mid-run: a clear error naming the worker and the checkpoint, the checkpoint
    holds the steps completed before, and its replay has no half-written step."""
    from dqnfast import ReplayBuffer
    from dqnfast.vector_env import EnvWorkerError
    cfg = tiny(tmp_path, total_steps=10_000, num_envs=2, env_workers=2, learning_starts=40)
    trainer = Trainer(cfg, "demo")
    send, calls = trainer.actor.send, [0]

    def send_then_kill(epsilon):
        calls[0] += 1
        if calls[0] == 60:  # the worker dies: the 60th step never completes
            worker = trainer.env._procs[1]
            os.kill(worker.pid, signal.SIGKILL)
            worker.join(30)
        send(epsilon)

    trainer.actor.send = send_then_kill
    with pytest.raises(EnvWorkerError, match=r"worker 1[\s\S]*checkpoint .*checkpoint\.pt"):
        trainer.run()
    state = ckpt.load_training_checkpoint(str(Path(cfg.run_dir) / "run" / "checkpoint.pt"))
    assert state["counters"]["global_step"] == 59 * 2  # the steps that completed
    rb = ReplayBuffer.load(str(Path(cfg.run_dir) / "run" / state["replay"]))
    assert len(rb) == len(rb.valid_indices()) > 0
    assert rb.writes - 59 * 2 >= 2  # whole steps plus episode starts: nothing of the 60th step


def test_ray_without_ray_installed_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    import sys as _sys
    monkeypatch.setitem(_sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    from dqnfast.train import main
    rc = main(["--ray", "local", "--run-dir", str(tmp_path), "--no-progress", "--device", "cpu"])
    assert rc == 2
    assert 'pip install "dqnfast[ray]"' in capsys.readouterr().err


def test_ray_option_is_checked_with_the_rest(tmp_path):
    with pytest.raises(ValueError, match="ray must be local, auto or HOST:PORT"):
        tiny(tmp_path, ray="somewhere")
    with pytest.raises(ValueError, match="cannot be combined"):
        tiny(tmp_path, ray="local", async_actor=True)
    assert tiny(tmp_path, ray="auto", ray_actors=3, envs_per_actor=5).replay_streams == 15
