"""`dqnfast train` / `dqnfast evaluate` end to end on real Breakout with tiny sizes, checkpoints, bad input."""
from __future__ import annotations

import csv
import os
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")
pytest.importorskip("ale_py")

from dqnfast import checkpoint as ckpt  # noqa: E402
from dqnfast import evaluate, train  # noqa: E402
from dqnfast.config import PRESETS, TrainConfig, preset  # noqa: E402

needs_wrapper = pytest.mark.skipif(
    not __import__("importlib").util.find_spec("dqnfast.wrappers"), reason="dqnfast.wrappers (issue 3) not merged yet")

pytestmark = pytest.mark.slow  # end-to-end `dqnfast train` runs


TINY = ["--frame-size", "36", "--buffer-size", "2000", "--batch-size", "8", "--learning-starts", "100",
        "--train-frequency", "4", "--target-update-interval", "20", "--exploration-steps", "200",
        "--eval-episodes", "0", "--no-progress", "--torch-threads", "1", "--noop-max", "5", "--log-interval", "10"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run_train(tmp_path, *extra, name="run"):
    rc = train.main([*TINY, "--run-dir", str(tmp_path), "--run-name", name, *extra])
    return rc, tmp_path / name


def counters(path):
    return ckpt.load_training_checkpoint(str(path))["counters"]


# -- config ----------------------------------------------------------------------------------------------
def test_every_option_has_its_docstring_in_help_and_presets_validate(capsys):
    with pytest.raises(SystemExit) as e:
        train.main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.replace("\u2502", " ").split())  # the box borders and wrapping gone
    import dataclasses
    undocumented = []
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        match = re.search(re.escape(flag) + r"[ ,]", text)
        assert match, f"{flag} is not in --help"
        start = match.start()
        described = text[start:text.find("(default:", start)].split()
        words = [w for w in described if not w.startswith(("--", "{")) and not w.isupper() and "|" not in w]
        if len(words) < 2:  # "discount factor" is the shortest
            undocumented.append(f.name)
    assert not undocumented, f"options without a description in --help: {undocumented}"
    nature = preset("nature")
    assert (nature.buffer_size, nature.batch_size, nature.gamma, nature.target_update_interval) == (1_000_000, 32, 0.99, 10_000)
    assert (nature.start_epsilon, nature.end_epsilon, nature.exploration_steps) == (1.0, 0.1, 1_000_000)
    assert (nature.learning_starts, nature.train_frequency, nature.clip_rewards, nature.noop_max) == (50_000, 4, True, 30)
    assert (nature.optimizer, nature.learning_rate) == ("rmsprop", 2.5e-4)
    for name in PRESETS:
        preset(name)


def test_epsilon_schedule_and_update_ratio():
    cfg = preset("nature")
    assert train.epsilon_at(cfg, 0) == 1.0 and train.epsilon_at(cfg, 49_999) == 1.0
    assert train.epsilon_at(cfg, 500_000) == pytest.approx(0.55)
    assert train.epsilon_at(cfg, 1_000_000) == pytest.approx(0.1) == train.epsilon_at(cfg, 5_000_000)
    assert train.updates_due(cfg, 50_000) == 0 and train.updates_due(cfg, 50_004) == 1
    assert train.updates_due(cfg, 90_000) == 10_000


# -- bad input is refused before any work ---------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--env-id", "ALE/NoSuchGame-v5"], "unknown env id"),
    (["--env-id", "CartPole-v1"], "is not an Atari (ALE) environment"),
    (["--buffer-size", "-5"], "buffer_size must be positive"),
    (["--batch-size", "0"], "batch_size must be positive"),
    (["--total-steps", "-1"], "total_steps must be positive"),
    (["--frame-size", "20"], "frame_size must be at least 36"),
    (["--learning-starts", "-3"], "learning_starts must be non-negative"),
    (["--end-epsilon", "1.5"], "end_epsilon must be in"),
    (["--crop", "10,5,0,160"], "crop must satisfy"),
    (["--crop", "1,2,3"], "crop must be four integers"),
    (["--optimizer", "sgd"], "invalid choice 'sgd'"),
    (["--preset", "huge"], "invalid choice"),
    (["--total-steps", "ten"], "Error parsing --total-steps"),
    (["--recurrent", "--async-actor"], "recurrent cannot be combined with async_actor"),
    (["--recurrent", "--n-step", "3"], "use n_step=1"),
    (["--recurrent", "--sequence-length", "4", "--burn-in", "4"], "burn_in must be in [0, sequence_length)"),
    (["--recurrent", "--sequence-length", "0"], "sequence_length must be positive"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        train.main([*args, "--run-dir", str(tmp_path), "--no-progress"])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_resume_refuses_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--resume", str(tmp_path / "nope.pt")])
    assert "does not exist" in capsys.readouterr().err


# -- checkpoint files -----------------------------------------------------------------------------------
def test_checkpoint_round_trip_and_corruption_is_detected(tmp_path):
    path = tmp_path / "c.pt"
    state = {"w": torch.arange(10.0), "n": 3, "s": "x", "t": (1, 2)}
    ckpt.save(path, state)
    back = ckpt.load(path)
    assert torch.equal(back["w"], state["w"]) and back["n"] == 3 and back["t"] == (1, 2)
    data = path.read_bytes()

    (tmp_path / "flip.pt").write_bytes(data[:-20] + bytes([data[-20] ^ 1]) + data[-19:])
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.load(tmp_path / "flip.pt")
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="truncated"):
        ckpt.load(tmp_path / "cut.pt")
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(ckpt.CheckpointError, match="not a dqnfast checkpoint"):
        ckpt.load(tmp_path / "junk.pt")
    assert issubclass(ckpt.CheckpointError, ValueError)


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    ckpt.save(path, {"version": 1})

    class Crash(Exception):
        pass

    def crash(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(os, "fsync", crash)  # dies after writing the bytes, before the rename
    with pytest.raises(Crash):
        ckpt.save(path, {"version": 2, "big": torch.zeros(100_000)})
    monkeypatch.undo()
    assert ckpt.load(path) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temp file left behind


# -- end to end on Breakout -------------------------------------------------------------------------------
@needs_wrapper
@pytest.mark.atari
def test_smoke_train_then_evaluate(tmp_path, capsys):
    rc, run = run_train(tmp_path, "--total-steps", "300", "--checkpoint-interval", "150")
    assert rc == 0
    c = counters(run / "checkpoint.pt")
    assert c["global_step"] == 300 and c["updates"] == (300 - 100) // 4
    with open(run / "scalars.csv") as f:
        tags = {row["tag"] for row in csv.DictReader(f)}
    assert {"losses/td_loss", "charts/SPS"} <= tags
    with open(run / "episodes.csv") as f:
        assert next(csv.reader(f)) == list(train.RunLog.EPISODE_FIELDS)
    assert (run / "learning_curve.png").stat().st_size > 0
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())

    gif = tmp_path / "game.gif"
    capsys.readouterr()
    assert evaluate.main([str(run / "checkpoint.pt"), "--episodes", "2", "--max-steps", "60", "--gif", str(gif),
                          "--json"]) == 0
    out = capsys.readouterr().out
    assert '"mean"' in out and '"returns"' in out
    from PIL import Image
    with Image.open(gif) as im:
        assert im.n_frames > 10


@needs_wrapper
@pytest.mark.atari
def test_checkpoint_then_resume_continues_counters_and_replay(tmp_path):
    from dqnfast import ReplayBuffer
    rc, run = run_train(tmp_path, "--total-steps", "200", "--n-step", "3")
    assert rc == 0
    first = ckpt.load_training_checkpoint(str(run / "checkpoint.pt"))
    assert first["counters"]["global_step"] == 200 and first["counters"]["updates"] == 25
    assert first["replay"] == "replay-200.bin"
    saved = ReplayBuffer.load(str(run / "replay-200.bin"))
    assert saved.n_step == 3 and len(saved) > 150

    # the resumed trainer starts from exactly the saved learner and replay
    cfg = TrainConfig.from_dict(first["config"]).replace(total_steps=400)
    trainer = train.Trainer(cfg, first["preset"], first, run_dir=str(run))
    for name, p in trainer.learner.q_network.state_dict().items():
        assert torch.equal(p, first["learner"]["q_network"][name])
    assert trainer.learner.updates == 25 and trainer.global_step == 200
    assert trainer.replay_restored and trainer.rb.writes == saved.writes + 1  # + the new game's first frame
    trainer.env.close()
    trainer.log.close()

    rc = train.main(["--resume", str(run / "checkpoint.pt"), "--total-steps", "400", "--no-progress"])
    assert rc == 0
    second = ckpt.load_training_checkpoint(str(run / "checkpoint.pt"))
    c = second["counters"]
    assert c["global_step"] == 400 and c["updates"] == (400 - 100) // 4 and c["resumes"] == 1
    assert c["episodes"] >= first["counters"]["episodes"]
    assert second["replay"] == "replay-400.bin"
    assert ReplayBuffer.load(str(run / "replay-400.bin")).writes > saved.writes + 200  # the same replay, grown
    assert not (run / "replay-200.bin").exists()  # superseded snapshots are removed
    with open(run / "episodes.csv") as f:
        steps = [int(r["global_step"]) for r in csv.DictReader(f)]
    assert steps == sorted(steps)  # one log, continued


@needs_wrapper
@pytest.mark.atari
def test_resume_without_a_replay_snapshot_refills_it(tmp_path, capsys):
    rc, run = run_train(tmp_path, "--total-steps", "150", "--no-save-replay")
    assert rc == 0 and ckpt.load_training_checkpoint(str(run / "checkpoint.pt"))["replay"] is None
    capsys.readouterr()
    rc = train.main(["--resume", str(run / "checkpoint.pt"), "--total-steps", "250"])
    assert rc == 0
    assert "refilling the replay with 100 epsilon-greedy steps" in capsys.readouterr().out
    c = counters(run / "checkpoint.pt")
    assert c["global_step"] == 250 and c["updates"] == (250 - 100) // 4


@needs_wrapper
@pytest.mark.atari
def test_corrupt_checkpoint_is_refused_with_a_clear_error(tmp_path, capsys):
    rc, run = run_train(tmp_path, "--total-steps", "120")
    path = run / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SystemExit) as e:
        train.main(["--resume", str(path)])
    assert e.value.code == 2
    assert "corrupt" in capsys.readouterr().err
    assert evaluate.main([str(path)]) == 2
    assert "corrupt" in capsys.readouterr().err


@needs_wrapper
@pytest.mark.atari
def test_corrupt_replay_snapshot_is_refused(tmp_path, capsys):
    rc, run = run_train(tmp_path, "--total-steps", "120")
    snap = run / "replay-120.bin"
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0xFF
    snap.write_bytes(bytes(data))
    assert train.main(["--resume", str(run / "checkpoint.pt"), "--total-steps", "200"]) == 2
    err = capsys.readouterr().err
    assert "dqnfast train: error:" in err
    assert counters(run / "checkpoint.pt")["global_step"] == 120  # nothing was overwritten


@needs_wrapper
@pytest.mark.atari
@pytest.mark.parametrize("n_step, shared", [("1", True), ("3", False)])
def test_one_step_training_samples_into_a_shared_frames_batch(tmp_path, n_step, shared):
    from dqnfast.batch import shared_frames
    cfg, name, _, _ = train.parse_config([*TINY, "--run-dir", str(tmp_path), "--run-name", "r", "--n-step", n_step,
                                          "--total-steps", "160"])
    trainer = train.Trainer(cfg, name)
    frames = shared_frames(trainer.batch)
    assert (frames is not None) == shared  # n-step targets need a separate next_obs
    summary = trainer.run()
    trainer.env.close()
    assert summary["updates"] == (160 - 100) // 4 and np.isfinite(trainer.last_metrics["td_loss"])
    if shared:
        assert shared_frames(trainer.batch) is frames and frames.shape == (8, cfg.stack + 1, 36, 36)
        assert frames.any()  # the updates sampled into it


@needs_wrapper
@pytest.mark.atari
def test_async_actor_keeps_the_update_ratio(tmp_path):
    rc, run = run_train(tmp_path, "--total-steps", "300", "--async-actor")
    assert rc == 0
    c = counters(run / "checkpoint.pt")
    assert c["global_step"] == 300 and c["updates"] == (300 - 100) // 4
    with open(run / "scalars.csv") as f:
        losses = [float(r["value"]) for r in csv.DictReader(f) if r["tag"] == "losses/td_loss"]
    assert losses and np.isfinite(losses).all()


@needs_wrapper
@pytest.mark.atari
def test_vector_envs_feed_one_replay_stream_each(tmp_path):
    from dqnfast import ReplayBuffer
    rc, run = run_train(tmp_path, "--total-steps", "300", "--num-envs", "3")
    assert rc == 0
    state = ckpt.load_training_checkpoint(str(run / "checkpoint.pt"))
    assert state["counters"]["global_step"] == 300 and state["counters"]["updates"] == (300 - 100) // 4
    rb = ReplayBuffer.load(str(run / state["replay"]))
    assert rb.num_envs == 3 and len(rb) > 250


@needs_wrapper
@pytest.mark.atari
def test_recurrent_smoke_train_resume_and_evaluate(tmp_path, capsys):
    rc, run = run_train(tmp_path, "--recurrent", "--sequence-length", "4", "--lstm-hidden", "32",
                        "--total-steps", "300")
    assert rc == 0
    first = ckpt.load_training_checkpoint(str(run / "checkpoint.pt"))
    assert first["config"]["recurrent"] and first["counters"]["updates"] == (300 - 100) // 4
    from dqnfast import ReplayBuffer
    saved = ReplayBuffer.load(str(run / first["replay"]))
    assert saved.stack == 1  # DRQN stores single frames; the LSTM carries the history
    assert train.main(["--resume", str(run / "checkpoint.pt"), "--total-steps", "360", "--no-progress"]) == 0
    assert counters(run / "checkpoint.pt")["updates"] == (360 - 100) // 4
    capsys.readouterr()
    assert evaluate.main([str(run / "checkpoint.pt"), "--episodes", "1", "--max-steps", "40", "--json"]) == 0
    assert '"mean"' in capsys.readouterr().out
