"""What the Ape-X pieces do, as a user would see it, each pinned against an independent record.

- the ingest writes consecutive chunks whole and in order: the replay holds every step the actors
  sent (read from the frames, which say who made them), and episodes run on across chunks;
- an actor explores with probability epsilon, not 1 - epsilon (its actions against a network
  whose greedy action never changes);
- `dqnfast train --ray` broadcasts the online network, not the target network (copies taken at
  each broadcast), a `--resume`d Ray run goes on counting from the checkpoint's step (the steps
  its envs took, and its log), and a checkpoint's step is the number of steps its replay holds.

Each actor's own Ape-X epsilon under a real Ray pool is checked with the cluster scenario in
tests/distributed/test_distributed.py (it needs Ray actors, so it runs in a network namespace there).
The trainer tests run `dqnfast train --ray local` in this process with the Ray transport swapped
for direct calls (tests/support/inprocess_actors.py), so they start no Ray and open no socket.
"""
from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest

from support.distributed_checks import FakePool, check_replay_exact, steps_held, steps_sent
from dqnfast import ReplayBuffer
from dqnfast.distributed import EnvActor, Ingestor
from dqnfast.distributed.fake_env import counting_env_fn

SHAPE = (36, 36)


def test_consecutive_chunks_go_in_whole_and_episodes_run_on_across_them():
    """Five chunks in a row from each of two actors, as the ingest thread hands them over (asking for
    new episodes only when it lost track): every step the actors sent is in the replay, nothing else,
    and episodes longer than two chunks are there whole, so no chunk was taken for a gap."""
    rounds = 10
    actors = [EnvActor(i, 3, counting_env_fn(25, 60, SHAPE), 0.5, frame_shape=SHAPE, rounds_per_chunk=rounds, seed=3)
              for i in range(2)]
    rb = ReplayBuffer(100_000, SHAPE, num_envs=6)
    ing = Ingestor(FakePool(2, 3), rb)
    sent = set()
    for _ in range(5):
        for a, actor in enumerate(actors):
            chunk = actor.collect(restart_episodes=ing._resync[a])
            sent |= steps_sent(chunk)
            ing._ingest(a, chunk)
    held = steps_held(rb)
    assert len(sent) == 5 * 2 * 3 * rounds  # every env stepped every round (the record is complete)
    missing, extra = sent - held, held - sent
    assert not missing and not extra, (f"{len(missing)} steps sent are not in the replay (e.g. {sorted(missing)[:3]}), "
                                       f"{len(extra)} are there but were never sent")
    check_replay_exact(rb, 3)  # states of consecutive frames, episodes without gaps
    length = defaultdict(int)
    for actor, env, seed, episode, _ in held:
        length[actor, env, seed, episode] += 1
    # the first episode of each env lasts 25 to 60 steps: it spans at least three chunks of 10
    assert sum(n > 2 * rounds for n in length.values()) >= 6, sorted(length.values())


def _constant_q_net():
    import torch

    class ConstantQ(torch.nn.Module):
        """Q-values that do not depend on the state: the greedy action is always 2 (of 4)."""

        def forward(self, x):
            q = torch.zeros(x.shape[0], 4)
            q[:, 2] = 1.0
            return q

    return ConstantQ()


def test_an_actor_explores_with_probability_epsilon(one_torch_thread):
    """Against a network whose greedy action is always 2: at epsilon 0.01 at least 95% of the
    actions are 2 (expected 99.25%); at epsilon 0.9 at most 40% (expected 32.5%: random actions
    are 2 a quarter of the time)."""
    share = {}
    for eps in (0.01, 0.9):
        actor = EnvActor(0, 4, counting_env_fn(5, 40, SHAPE), eps, net_fn=_constant_q_net, frame_shape=SHAPE,
                         rounds_per_chunk=40, seed=11)
        chunks = [actor.collect() for _ in range(4)]
        actions = np.concatenate([c["action"][_step_rows(c)] for c in chunks])
        assert len(actions) == 4 * 40 * 4
        share[eps] = float(np.mean(actions == 2))
    assert share[0.01] >= 0.95 and share[0.9] <= 0.40, share


def _step_rows(chunk) -> np.ndarray:
    seg = chunk["segments"]
    return ~np.repeat(seg[:, 2].astype(bool), seg[:, 1] - seg[:, 0])


# ---- `dqnfast train --ray`, its actors in this process --------------------------------------------
TRAIN = ["--ray", "local", "--ray-actors", "2", "--envs-per-actor", "2", "--frame-size", "36", "--buffer-size", "4000",
         "--batch-size", "8", "--learning-starts", "100", "--train-frequency", "4",
         # the target network stays the initial one for the whole test, so it differs from the online one
         # from the first update on, and a broadcast of the wrong one shows
         "--target-update-interval", "100000", "--ray-weights-interval", "5", "--eval-episodes", "0",
         "--no-progress", "--no-tensorboard", "--torch-threads", "1", "--device", "cpu", "--log-interval", "5"]


@pytest.fixture(scope="module")
def ray_run_and_resume(tmp_path_factory):
    """`dqnfast train --ray local ... --total-steps 300`, then `--resume` to 600; what its envs did
    and what it broadcast, recorded independently (tests/support/inprocess_actors.py)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("ale_py")  # the trainer asks the game for its number of actions
    from support.inprocess_actors import Record, patch_ray_loop

    from dqnfast.checkpoint import load_training_checkpoint
    from dqnfast.train import main as train_main

    run_dir = tmp_path_factory.mktemp("ray_train")
    ckpt = run_dir / "ray" / "checkpoint.pt"
    threads = torch.get_num_threads()
    out = {}
    try:
        with patch_ray_loop(Record()) as record:
            assert train_main(TRAIN + ["--checkpoint-interval", "0", "--total-steps", "300", "--run-dir", str(run_dir),
                                       "--run-name", "ray"]) == 0
            out["first"] = {"env_steps": record.env_steps, "counters": load_training_checkpoint(str(ckpt))["counters"],
                            "publications": len(record.publications), "games": list(record.games)}
            with open(run_dir / "ray" / "episodes.csv", newline="") as f:
                out["first"]["episodes_csv"] = list(csv.DictReader(f))
            assert train_main(["--resume", str(ckpt), "--total-steps", "600"]) == 0
            out["second"] = {"env_steps": record.env_steps, "counters": load_training_checkpoint(str(ckpt))["counters"]}
            out["publications"] = record.publications
    finally:
        torch.set_num_threads(threads)
    with open(run_dir / "ray" / "scalars.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out["log_steps"] = [int(r["global_step"]) for r in rows]
    out["updates_log"] = [(int(r["global_step"]), int(float(r["value"]))) for r in rows if r["tag"] == "charts/updates"]
    return out


@pytest.mark.slow
@pytest.mark.atari
def test_ray_learner_broadcasts_the_online_network(ray_run_and_resume):
    """Every broadcast equals the learner's online network at that moment, and broadcasts were made
    while the target network differed from it (all but the first run's very first), the resumed
    run's opening broadcast included."""
    pubs = ray_run_and_resume["publications"]
    resumed_first = ray_run_and_resume["first"]["publications"]
    assert len(pubs) > resumed_first + 1 >= 3

    def same(a, b):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    differ = [i for i, p in enumerate(pubs) if not same(p["online"], p["target"])]
    assert resumed_first in differ and len(differ) >= len(pubs) - 1, differ
    wrong = [i for i, p in enumerate(pubs) if not same(p["published"], p["online"])]
    assert not wrong, (f"broadcasts {wrong} of {len(pubs)} are not the online network's weights "
                       f"(they equal the target's: {[same(pubs[i]['published'], pubs[i]['target']) for i in wrong]})")


@pytest.mark.slow
@pytest.mark.atari
def test_a_resumed_ray_run_continues_the_step_count(ray_run_and_resume):
    """The checkpoint's agent step is the number of steps the actors' envs took, after the first run
    and after the resumed one (which adds to it), and the run's log goes on from where it stopped."""
    first, second = ray_run_and_resume["first"], ray_run_and_resume["second"]
    assert first["counters"]["global_step"] == first["env_steps"] >= 300
    assert second["counters"]["resumes"] == 1
    assert second["counters"]["global_step"] == second["env_steps"] >= 600, (second, first)
    steps = ray_run_and_resume["log_steps"]
    assert steps == sorted(steps) and steps[-1] > first["env_steps"], steps


@pytest.mark.slow
@pytest.mark.atari
def test_a_ray_run_keeps_the_configured_replay_ratio(ray_run_and_resume):
    """The Ray learner takes exactly the updates the configured ratio asks for at the run's last
    step (one per 4 agent steps after learning_starts), whatever the actors' speed, as the
    in-process loops do: while updates are due the actors wait."""
    from dqnfast.config import TrainConfig
    from dqnfast.train.schedule import updates_due

    cfg = TrainConfig(learning_starts=100, train_frequency=4)
    for run in ("first", "second"):
        counters = ray_run_and_resume[run]["counters"]
        assert counters["updates"] == updates_due(cfg, counters["global_step"]), (run, counters)
    # and all along: an update is logged once it is taken, at the step count of that moment; the
    # learner is never behind by more than the chunks one look at the ingest can bring (2 actors x
    # 32 rounds x 2 envs, a quarter of them updates), nor ever ahead
    lags = [updates_due(cfg, step) - updates for step, updates in ray_run_and_resume["updates_log"]]
    assert len(lags) >= 20 and max(lags) <= 2 * 32 * 2 // 4 and min(lags) >= 0, lags


@pytest.mark.slow
@pytest.mark.atari
def test_a_ray_run_logs_each_game_with_its_length_and_its_actors_epsilon(ray_run_and_resume):
    """episodes.csv has one row per game the actors' envs finished, with its real return and length
    and the Ape-X epsilon of the actor that played it (not length 0 and epsilon NaN)."""
    from dqnfast.distributed import apex_epsilons

    first = ray_run_and_resume["first"]
    eps = apex_epsilons(2)
    rows = sorted((float(r["return"]), int(r["length"]), float(r["epsilon"])) for r in first["episodes_csv"])
    # games finished in chunks that were still in flight when the run stopped never reached the log
    played = sorted((ret, length, round(eps[actor], 4)) for actor, _, ret, length in first["games"])  # (4 decimals in the csv)
    assert len(rows) >= 10
    logged = list(rows)
    for game in played:
        if game in logged:
            logged.remove(game)
    assert not logged, f"logged games no env played: {logged[:5]}"
    assert len(played) - len(rows) <= 2 * 2 * 2, (len(played), len(rows))  # at most the chunks in flight


@pytest.mark.slow
@pytest.mark.atari
def test_a_ray_checkpoint_counts_the_steps_its_replay_holds(tmp_path, one_torch_thread):
    """A checkpoint written during a Ray run pauses the ingest and saves the replay: its agent step
    must be the number of steps that replay holds (read from the frames), even when a chunk was
    written between the learner's last look at the ingest and the pause (forced here every time);
    else a run resumed from it counts steps it never saw, or misses some it holds."""
    pytest.importorskip("ale_py")
    from support.inprocess_actors import LateChunkIngestor, Record, patch_ray_loop

    from dqnfast.train import checkpoints
    from dqnfast.train import main as train_main

    saved = []
    real_save = checkpoints.CheckpointWriter.save

    def save(self, rb, step, **contents):
        saved.append((step, contents["counters"]["global_step"], len(steps_held(rb))))
        return real_save(self, rb, step, **contents)

    with pytest.MonkeyPatch.context() as mp, patch_ray_loop(Record(), LateChunkIngestor) as record:
        mp.setattr(checkpoints.CheckpointWriter, "save", save)
        # n_step 1: every step the replay holds is a sampleable transition (read by steps_held)
        assert train_main(TRAIN + ["--checkpoint-interval", "100", "--n-step", "1", "--total-steps", "400",
                                   "--run-dir", str(tmp_path), "--run-name", "ray"]) == 0
    assert len(saved) >= 3  # periodic ones, and the last
    assert all(step == counted == held for step, counted, held in saved), saved
    assert saved[-1][2] == record.env_steps
