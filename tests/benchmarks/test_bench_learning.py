"""`dqnfast bench learning`: the statistics on known inputs, a 2-seed batch on real Breakout with tiny
sizes (files, scores against an independent evaluation, the protocol), rerun and resume, bad input."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from dqnfast.benchmarks import aggregate, anchors
from dqnfast.benchmarks.learning import StepTail, late_from_step, late_training_games

# -- (a) the statistics ------------------------------------------------------------------------------------


pytestmark = pytest.mark.slow  # the learning runner trains and evaluates seeds


def test_iqm_is_the_mean_of_the_middle_half():
    assert aggregate.iqm(range(1, 9)) == 4.5  # 8 scores: cut 2 each end, mean of 3, 4, 5, 6
    assert aggregate.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # order does not matter
    assert aggregate.iqm([0, 0, 0, 1000]) == 0.0  # the outlier is cut (the mean is 250)
    assert aggregate.iqm([3.0]) == 3.0 and aggregate.iqm([1, 2]) == 1.5  # nothing to cut


def test_iqm_rounds_the_cut_down_as_scipy_trim_mean_does():
    # 5 scores: 0.25 * 5 = 1.25 -> cut 1 from each end, average the middle 3 (scipy.stats.trim_mean,
    # which rliable's IQM calls); fractional weighting would give (0.75*2 + 4 + 0.75*8) / 2.5 = 4.6
    assert aggregate.iqm([1, 2, 4, 8, 100]) == pytest.approx(14 / 3)
    # 7 scores: 1.75 -> cut 1; 11 scores: 2.75 -> cut 2
    assert aggregate.iqm([0, 1, 2, 3, 4, 50, 60]) == pytest.approx(12.0)
    assert aggregate.iqm([0, 1, 2, 3, 4, 5, 6, 7, 80, 90, 1000]) == pytest.approx(107 / 7)
    # (runs, tasks): all scores together, as rliable's aggregate IQM
    assert aggregate.iqm([[1, 5], [2, 6], [3, 7], [4, 8]]) == 4.5


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_more_seeds():
    five = np.random.default_rng(0).normal(10.0, 3.0, size=5)
    widths = []
    for scores in (five, np.tile(five, 10)):  # the same spread of scores, from 10x the seeds
        for stat in ("iqm", "mean", "median"):
            lo, hi = aggregate.stratified_bootstrap_ci(scores, stat, reps=4000, seed=1)
            point = float(aggregate.STATISTICS[stat](scores.reshape(1, -1))[0])
            assert lo <= point <= hi, (stat, len(scores))
        lo, hi = aggregate.stratified_bootstrap_ci(scores, "iqm", reps=4000, seed=1)
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # about sqrt(10) narrower
    assert aggregate.stratified_bootstrap_ci([7.0], reps=100) == (7.0, 7.0)  # one seed: nothing to resample
    s = aggregate.summarize([1, 2, 4, 8, 100], reps=2000)
    assert s["iqm"] == pytest.approx(14 / 3) and s["mean"] == 23.0 and s["median"] == 4.0
    assert s["iqm_ci"][0] <= s["iqm"] <= s["iqm_ci"][1]


def test_bootstrap_resamples_runs_within_each_task():
    # task A scores 0 in both runs, task B 100: a replicate that resamples runs within each task
    # always holds two 0s and two 100s, so the mean never moves; pooled resampling would move it
    scores = np.array([[0.0, 100.0], [0.0, 100.0]])
    assert aggregate.stratified_bootstrap_ci(scores, "mean", reps=2000) == (50.0, 50.0)


def test_anchors_table():
    assert anchors.game_name("ALE/Breakout-v5") == "Breakout" == anchors.game_name("BreakoutNoFrameskip-v4")
    table = {a.agent: a for a in anchors.anchors_for("ALE/Breakout-v5")}
    assert {k: a.score for k, a in table.items()} == {"DER": 9.2, "DrQ": 15.4, "DrQ(ε)": 19.8, "SPR": 19.6,
                                                      "human": 30.5, "random": 1.7}
    assert all(a.source for a in table.values())
    assert anchors.anchors_for("ALE/Tetris-v5") == []  # not an Atari 100k game


def test_step_tail_reads_only_complete_new_lines(tmp_path):
    path = tmp_path / "episodes.csv"
    tail = StepTail(str(path))
    assert tail.poll() == 0  # not there yet
    path.write_text("global_step,episode\n120,1\n30")
    assert tail.poll() == 120  # "30" may still become "300"
    with open(path, "a") as f:
        f.write("0,2\n")
    assert tail.poll() == 300


def test_late_training_games_are_those_ending_after_the_last_fifth_begins():
    assert late_from_step(100_000) == 80_000 and late_from_step(300) == 240
    steps = [10_000, 79_999, 80_000, 80_001, 90_000, 95_000, 99_000, 100_000]
    returns = [50.0, 40.0, 30.0, 1.0, 2.0, 3.0, 4.0, 100.0]
    late = late_training_games(steps, returns, 80_000)  # a game ending at step 80,000 is before it
    assert late == {"from_step": 80_000, "games": 5, "mean": 22.0, "iqm": 3.0}  # IQM: cut 1 each end of 5
    assert late_training_games(steps, returns, 100_000) == {"from_step": 100_000, "games": 0, "mean": None,
                                                           "iqm": None}


# -- (b) a 2-seed batch on Breakout --------------------------------------------------------------------------
torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")
pytest.importorskip("ale_py")
pytest.importorskip("tyro")

from dqnfast import benchmarks, train  # noqa: E402
from dqnfast.benchmarks import learning, learning_seed  # noqa: E402
from dqnfast.checkpoint import load_training_checkpoint  # noqa: E402
from dqnfast.config import TrainConfig  # noqa: E402
from dqnfast.evaluate import evaluate_learner, load_learner  # noqa: E402

TINY = ["--frame-size", "36", "--crop", "none", "--buffer-size", "2000", "--batch-size", "8",
        "--learning-starts", "100", "--target-update-interval", "20", "--exploration-steps", "200",
        "--log-interval", "10", "--checkpoint-interval", "150", "--noop-max", "5"]
STEPS = 300
GAMES = 2


def command(out):
    return ["learning", "--preset", "demo", "--env-id", "ALE/Breakout-v5", "--seeds", "2", "--jobs", "2",
            "--eval-games", str(GAMES), "--bootstrap-reps", "2000", "--out", str(out),
            "--total-steps", str(STEPS), *TINY]


def bench(args):
    """(exit status, stdout, stderr) of `dqnfast bench ARGS`, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = benchmarks.main(list(args))
    return rc, out.getvalue(), err.getvalue()


def log_starts(out, seed):
    """Processes the runner started for a seed (one header line each in its log)."""
    with open(out / f"seed-{seed}.log") as f:
        return sum(line.startswith("--- ") for line in f)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("bench") / "out"
    rc, stdout, stderr = bench(command(out))
    assert rc == 0, stdout + stderr
    yield out, stdout
    torch.set_num_threads(threads)


@pytest.mark.atari
def test_batch_writes_scores_summary_and_curves(batch):
    out, stdout = batch
    for name in ("batch.json", "summary.json", "scores.csv", "seed-1.json", "seed-2.json", "learning_curves.png"):
        assert (out / name).is_file(), name
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = {s: json.loads((out / f"seed-{s}.json").read_text()) for s in (1, 2)}
    for s, r in results.items():
        ckpt = load_training_checkpoint(str(out / f"seed-{s}" / "checkpoint.pt"))
        assert ckpt["config"]["seed"] == s and ckpt["config"]["total_steps"] == STEPS
        assert ckpt["config"]["torch_threads"] == 1 and ckpt["config"]["eval_episodes"] == 0
        assert r["seed"] == s and r["agent_steps"] == STEPS == ckpt["counters"]["global_step"]
        assert r["games"] == GAMES == len(r["scores"]) == len(r["game_steps"])
        assert r["mean"] == pytest.approx(np.mean(r["scores"])) and r["std"] == pytest.approx(np.std(r["scores"]))
        assert r["train_s"] > 0 and r["eval_s"] > 0
        with open(out / f"seed-{s}" / "episodes.csv") as f:
            assert len(list(csv.DictReader(f))) == r["training_games"] == ckpt["counters"]["episodes"]
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["seed"]) for r in rows] == [1, 2]
    assert [[float(x) for x in r["scores"].split()] for r in rows] == [results[s]["scores"] for s in (1, 2)]

    summary = json.loads((out / "summary.json").read_text())
    means = [results[s]["mean"] for s in (1, 2)]
    assert summary["iqm"] == pytest.approx(aggregate.iqm(means)) and summary["runs"] == 2
    assert summary["mean"] == pytest.approx(np.mean(means)) and summary["median"] == pytest.approx(np.median(means))
    assert summary["iqm_ci"][0] <= summary["iqm"] <= summary["iqm_ci"][1]
    assert {a["agent"] for a in summary["anchors"]} == {"DER", "DrQ", "DrQ(ε)", "SPR", "human", "random"}
    assert summary["protocol"] == {"eval_games": GAMES, "epsilon": 0.05, "noop_max": 30, "max_frames_per_game": 108_000,
                                   "max_agent_steps_per_game": 27_000, "repeat_action_probability": 0.0,
                                   "all_lives": True}
    assert any("FIRE" in d for d in summary["differences"])
    assert any("2 evaluation games" in d for d in summary["differences"])
    assert summary["config"] == json.loads((out / "batch.json").read_text())["config"]
    assert summary["config"]["frame_size"] == 36 and summary["config"]["total_steps"] == STEPS
    # the late training games, from each seed's episodes.csv read here
    assert summary["late_training"]["from_step"] == 240
    late_means = []
    for s in (1, 2):
        with open(out / f"seed-{s}" / "episodes.csv") as f:
            late = [float(row["return"]) for row in csv.DictReader(f) if int(row["global_step"]) > 240]
        got = summary["late_training"]["per_seed"][str(s)]
        assert got["games"] == len(late)
        if late:
            assert got["mean"] == pytest.approx(np.mean(late)) and got["iqm"] == pytest.approx(aggregate.iqm(late))
        cell = rf"{np.mean(late):.2f}\s+{aggregate.iqm(late):.2f} \({len(late)}\)" if late else "-"
        assert re.search(rf"^\s+{s}\s+{STEPS}\s.*\s{cell}$", stdout, re.M), (s, cell)
        late_means.append(np.mean(late) if late else None)
    if None in late_means:  # a seed without late games: no IQM over seeds
        assert summary["late_training"]["iqm_of_means"] is None and "IQM of the seeds' means" not in stdout
    else:
        assert summary["late_training"]["iqm_of_means"] == pytest.approx(aggregate.iqm(late_means))
        assert f"IQM of the seeds' means {aggregate.iqm(late_means):.2f}" in stdout
    # the printed table: one row per seed, the IQM line, the anchors with their sources
    for s in (1, 2):
        assert re.search(rf"^\s+{s}\s+{STEPS}\s+{results[s]['mean']:.2f} \+- {results[s]['std']:.2f}", stdout, re.M)
    assert "IQM" in stdout and "SPR" in stdout and "Agarwal et al. 2021" in stdout
    assert "training games after step 240: mean, IQM (games)" in stdout
    assert "differences from the published Atari 100k protocol" in stdout


@pytest.mark.atari
def test_scores_are_those_of_an_independent_evaluation(batch, capsys, one_torch_thread):
    """Each saved agent, played again here with the protocol's settings (ε 0.05, every life, up to 30
    no-ops, 27k steps, the seed's evaluation seed), scores what the runner recorded, game for game."""
    out, _ = batch
    for s in (1, 2):
        r = json.loads((out / f"seed-{s}.json").read_text())
        learner, cfg, _ = load_learner(str(out / f"seed-{s}" / "checkpoint.pt"))
        capsys.readouterr()
        scores = evaluate_learner(learner, cfg.replace(noop_max=30), episodes=GAMES, epsilon=0.05,
                                  seed=r["eval"]["seed"], max_steps=27_000, progress=True)
        steps = [int(n) for n in re.findall(r"\((\d+) steps\)", capsys.readouterr().out)]
        assert r["scores"] == scores and r["game_steps"] == steps


@pytest.mark.atari
def test_evaluation_follows_the_protocol(batch, monkeypatch, one_torch_thread):
    """What the seed process asks of evaluate_learner, and the env the games are played on."""
    import dqnfast.evaluate
    out, _ = batch
    calls = []

    def fake(learner, cfg, **kwargs):
        calls.append((cfg, kwargs))
        return [1.0, 3.0]

    monkeypatch.setattr(dqnfast.evaluate, "evaluate_learner", fake)
    r = learning_seed.evaluate_run(str(out / "seed-1"), GAMES, 123)
    (cfg, kwargs), = calls
    assert kwargs["epsilon"] == 0.05 and kwargs["max_steps"] == 27_000 and kwargs["episodes"] == GAMES
    assert kwargs["seed"] == 123 and cfg.noop_max == 30  # trained with 5: evaluation uses the protocol's 30
    assert cfg.frame_size == 36  # the agent's own preprocessing
    assert r["eval"]["repeat_action_probability"] == 0.0  # read from the evaluation env itself
    assert r["mean"] == 2.0 and r["std"] == 1.0


@pytest.mark.atari
def test_a_stopped_evaluation_resumes_with_the_games_it_lacks(batch, tmp_path, monkeypatch, one_torch_thread):
    """Each finished game is on disk (RUN/eval-games.csv) as it ends; an evaluation stopped after
    game 1 plays only game 2 when started again, and ends with the scores of an uninterrupted
    one. A line cut short by the kill is dropped, and a file of other settings is set aside."""
    import shutil

    import dqnfast.evaluate

    out, _ = batch
    run = tmp_path / "seed-1"
    shutil.copytree(out / "seed-1", run)
    (run / learning_seed.GAMES_FILE).unlink(missing_ok=True)
    full = learning_seed.evaluate_run(str(run), GAMES, 321)
    lines = (run / learning_seed.GAMES_FILE).read_text().splitlines()
    assert len(lines) == 2 + GAMES and lines[1] == "game,score,steps,seconds"
    assert sorted(int(line.split(",")[0]) for line in lines[2:]) == list(range(GAMES))

    # stopped after its first game ended, with the second game's line half written
    first = next(line for line in lines[2:] if line.startswith("0,"))
    second = next(line for line in lines[2:] if line.startswith("1,"))
    (run / learning_seed.GAMES_FILE).write_text("\n".join(lines[:2] + [first]) + "\n" + second[:3])
    played, real = [], dqnfast.evaluate.evaluate_learner

    def spy(learner, cfg, **kw):  # the games the env really plays, from evaluate_learner's own callback
        record = kw["on_game"]
        kw["on_game"] = lambda game, score, steps: (played.append(game), record(game, score, steps))
        return real(learner, cfg, **kw)

    monkeypatch.setattr(dqnfast.evaluate, "evaluate_learner", spy)
    resumed = learning_seed.evaluate_run(str(run), GAMES, 321)
    assert played == [1]
    assert resumed["scores"] == full["scores"] and resumed["game_steps"] == full["game_steps"]
    assert resumed["eval_s"] >= float(first.split(",")[3])

    # other settings (another evaluation seed): the old file is set aside and every game is played
    played.clear()
    other = learning_seed.evaluate_run(str(run), GAMES, 999)
    assert sorted(played) == list(range(GAMES))
    set_aside = (run / f"{learning_seed.GAMES_FILE}.other-settings").read_text().splitlines()[2:]
    assert sorted(line.rsplit(",", 1)[0] for line in set_aside) == [first.rsplit(",", 1)[0], second.rsplit(",", 1)[0]]
    assert other["eval"]["seed"] == 999


def test_at_most_jobs_seeds_run_at_once(tmp_path, monkeypatch):
    """Four stand-in seed processes, two at a time; a seed whose process writes no scores is reported failed."""
    import sys
    monkeypatch.setattr(learning, "worker_command",
                        lambda *a: [sys.executable, "-c", "import time; time.sleep(0.3)"])
    started, alive_at_start = [], []
    real_start = learning.start

    def start(seed, cmd):
        alive_at_start.append(sum(s.proc.poll() is None for s in started))
        real_start(seed, cmd)
        started.append(seed)

    monkeypatch.setattr(learning, "start", start)
    seeds = [learning.Seed(s, str(tmp_path)) for s in range(1, 5)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert learning.run_seeds(seeds, "demo", [], 1, 2, 100, show_progress=False)
    assert len(started) == 4 and max(alive_at_start) == 1 and alive_at_start[:2] == [0, 1]
    assert out.getvalue().count("failed (exit status 0)") == 4


# -- (c) rerun and resume ------------------------------------------------------------------------------------
@pytest.mark.atari
def test_rerun_does_not_rerun_done_seeds(batch, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(batch[0], out)
    watched = [out / "seed-1.json", out / "seed-2.json", out / "seed-1" / "checkpoint.pt",
               out / "seed-2" / "checkpoint.pt"]
    before = [p.stat().st_mtime_ns for p in watched]
    rc, stdout, stderr = bench(command(out))
    assert rc == 0, stdout + stderr
    assert "seeds 1, 2: already done" in stdout
    assert [p.stat().st_mtime_ns for p in watched] == before
    assert log_starts(out, 1) == log_starts(out, 2) == 1  # no process was started
    assert json.loads((out / "summary.json").read_text())["runs"] == 2


@pytest.mark.atari
def test_stopped_seed_is_resumed_and_trained_seed_only_evaluated(batch, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(batch[0], out)
    first = json.loads((out / "seed-1.json").read_text())
    ckpt1 = (out / "seed-1" / "checkpoint.pt").stat().st_mtime_ns
    # seed 1: trained, but its scores file is gone (stopped during its evaluation)
    (out / "seed-1.json").unlink()
    # seed 2: stopped at step 150 of 300, with a checkpoint, and a game logged after it
    (out / "seed-2.json").unlink()
    shutil.rmtree(out / "seed-2")
    assert train.main(["--preset", "demo", "--seed", "2", "--run-dir", str(out), "--run-name", "seed-2", *TINY,
                       "--total-steps", "150", "--eval-episodes", "0", "--no-progress", "--torch-threads", "1"]) == 0
    with open(out / "seed-2" / "episodes.csv", "a") as f:
        f.write("170,99,5,20,0.5,0\n")

    rc, stdout, stderr = bench(command(out))
    assert rc == 0, stdout + stderr
    assert "seeds 1: trained, to evaluate" in stdout and "seeds 2: stopped with a checkpoint, resumed" in stdout
    assert (out / "seed-1" / "checkpoint.pt").stat().st_mtime_ns == ckpt1  # not trained again
    again = json.loads((out / "seed-1.json").read_text())
    assert again["scores"] == first["scores"] and again["game_steps"] == first["game_steps"]
    log2 = (out / "seed-2.log").read_text()
    assert "--resume" in log2 and "resuming at 150" in log2
    r2 = json.loads((out / "seed-2.json").read_text())
    c2 = load_training_checkpoint(str(out / "seed-2" / "checkpoint.pt"))["counters"]
    assert r2["agent_steps"] == c2["global_step"] == STEPS and c2["resumes"] == 1 == r2["resumes"]
    with open(out / "seed-2" / "episodes.csv") as f:
        steps = [int(row["global_step"]) for row in csv.DictReader(f)]
    assert steps == sorted(steps) and 170 not in steps  # the row logged after the checkpoint was dropped


# -- (d) bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--eval-games", "0"], "--eval-games must be at least 1"),
    (["--learning-rate", "-1"], "learning_rate must be positive"),
    (["--frame-size", "20"], "frame_size must be at least 36"),
    (["--total-steps", "ten"], "the trainer refuses"),
    (["--env-id", "ALE/Nope-v5"], "unknown env id"),
    (["--seed", "3"], "use --seeds N"),
    (["--run-name", "x"], "the runner sets --run-name"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, monkeypatch, args, message):
    def no_process(*a, **k):
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    out = tmp_path / "out"
    rc, stdout, stderr = bench(["learning", "--out", str(out), *TINY, *args])
    assert rc == 2
    assert message in stderr
    assert not out.exists()


def test_a_changed_config_is_refused_on_an_existing_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cfg = learning.trainer_config("demo", TINY)
    (out / "batch.json").write_text(json.dumps({"preset": "demo", "eval_games": 2, "config": learning.comparable(cfg)}))
    rc, _, stderr = bench(["learning", "--out", str(out), "--eval-games", "2", *TINY, "--learning-rate", "1e-3"])
    assert rc == 2 and "learning_rate" in stderr and "differ" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["batch.json"]


def test_a_batch_from_before_a_new_field_resumes_unless_the_field_is_set(tmp_path):
    """batch.json of a batch run before a TrainConfig field existed lacks it: the seeds ran as its
    default, so a rerun with the default resumes it, and one that sets the field is refused."""
    out = tmp_path / "out"
    out.mkdir()
    cfg = learning.trainer_config("demo", TINY)
    assert cfg.exploration_after_warmup is False and cfg.frame_size != TrainConfig().frame_size
    older = learning.comparable(cfg)
    del older["exploration_after_warmup"], older["frame_size"]  # frame_size: set by TINY, not its default
    (out / "batch.json").write_text(json.dumps({"preset": "demo", "eval_games": 2, "config": older}))
    batch = {"preset": "demo", "eval_games": 2, "config": learning.comparable(cfg)}
    with pytest.raises(learning.UsageError, match=r"\(frame_size differ\)"):
        learning.check_batch_file(str(out), batch)
    older["frame_size"] = cfg.frame_size
    (out / "batch.json").write_text(json.dumps({"preset": "demo", "eval_games": 2, "config": older}))
    learning.check_batch_file(str(out), batch)  # resumes: the missing field ran as its default
    set_field = {**batch, "config": learning.comparable(cfg.replace(exploration_after_warmup=True))}
    with pytest.raises(learning.UsageError, match=r"\(exploration_after_warmup differ\)"):
        learning.check_batch_file(str(out), set_field)


def test_differing_fields_names_each_field_whose_values_differ_a_missing_one_too():
    """The one rule behind refusing a rerun of other settings, refusing mixed batches across
    games and naming a setting: a field only one config has differs, even from None."""
    a = {"lr": 1e-4, "shift": 4, "crop": None, "env_id": "ALE/Pong-v5"}
    b = {"lr": 1e-4, "shift": 3, "env_id": "ALE/Boxing-v5"}
    assert learning.differing_fields(a, b) == ["crop", "env_id", "shift"]
    assert learning.differing_fields(b, a, ignore=("env_id",)) == ["crop", "shift"]
    assert learning.differing_fields(a, dict(a)) == []


def test_registered_as_a_bench_group(capsys):
    assert "learning" in benchmarks.GROUPS and "learning" not in benchmarks.ALL
    with pytest.raises(SystemExit) as e:
        benchmarks.main(["learning", "--help"])
    assert e.value.code == 0
    assert "--eval-games" in capsys.readouterr().out


def test_a_seed_started_with_sigint_ignored_still_stops_on_the_runners_sigint(tmp_path):
    """The runner stops seeds with SIGINT. A runner started in the background (nohup ... &) hands
    its children SIGINT ignored; the seed process must still stop with a checkpoint (exit 130)."""
    import signal
    import sys

    run = tmp_path / "seed-1"
    cmd = [sys.executable, "-m", "dqnfast.benchmarks.learning_seed", "--scores", str(tmp_path / "seed-1.json"),
           "--run-dir", str(run), "--eval-games", "1", "--eval-seed", "7", "--",
           "--preset", "demo", "--seed", "1", "--run-dir", str(tmp_path), "--run-name", "seed-1",
           *TINY, "--total-steps", "1000000", "--no-progress", "--eval-episodes", "0", "--torch-threads", "1",
           "--no-tensorboard"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) as proc:  # (closes the pipe)
        _stop_when_learning(proc, run)
    assert proc.returncode == 128 + signal.SIGINT
    assert (run / "checkpoint.pt").exists()
    assert not (tmp_path / "seed-1.json").exists()  # a stopped seed is not scored


def _stop_when_learning(proc, run):
    import signal

    try:
        # once the run logs its learning, it is inside the training loop (no sleep decides the outcome)
        scalars = run / "scalars.csv"
        while proc.poll() is None and not (scalars.exists() and scalars.read_text().count("\n") > 3):
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)  # (a guard: a seed that ignores SIGINT trains on and fails here)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, out
