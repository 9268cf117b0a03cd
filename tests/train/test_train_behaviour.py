"""What the trainer does, checked against an independent record of what really happened.

Each test runs the Trainer briefly on a real Atari game (36x36 frames, a few hundred steps) with
the recorders of tests/support/train_records.py patched in: every env make_atari_env builds records its
game (raw rewards, real game overs, seeds) and its agent stream (what the actor was given), and the
replay records every frame written to it and every batch sampled. The trainer's counters and logs
are then compared with those records, never with each other. Most tests run all of the trainer's
loops: the synchronous one, the async actor thread, the synchronous one with env worker processes
(ProcessVectorEnv, SAME_STEP autoreset) and, where the behaviour is the Ray path's too, `--ray`
with its actor in this process (its envs are the config's Atari envs, recorded the same way), so a
behaviour is pinned once for all of them; with two or more envs and no workers the envs are
gymnasium's SyncVectorEnv (NEXT_STEP autoreset).
"""
from __future__ import annotations

import contextlib
import copy
import csv
import warnings
from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")
pytest.importorskip("ale_py")

import torch.nn.functional as F  # noqa: E402
from support.pixel_env import PixelEnv  # noqa: E402
from support.train_records import EnvRecorder, SpyReplay, install_replay_spy  # noqa: E402
from support.tiny_config import tiny as tiny_config  # noqa: E402

from dqnfast import ReplayBuffer  # noqa: E402
from dqnfast import checkpoint as ckpt  # noqa: E402
from dqnfast import train  # noqa: E402
from dqnfast.config import TrainConfig  # noqa: E402
from dqnfast.recurrent import DRQNLearner  # noqa: E402
from dqnfast.train import Trainer  # noqa: E402
from dqnfast.train import trainer as trainer_module  # noqa: E402


pytestmark = pytest.mark.slow  # trainer runs on real Atari games, every loop


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


# the loops a run can take, as config changes (workers: at most num_envs of them). "ray" is
# `dqnfast train --ray local` with its one actor in this process (tests/support/inprocess_actors.py):
# the actor steps the config's Atari envs, so the same recorders see them.
LOOPS = ["sync", "async", "workers"]
LOOPS_WITH_RAY = LOOPS + ["ray"]


def tiny(tmp_path, loop: str = "sync", num_envs: int = 1, **changes) -> TrainConfig:
    values: dict = dict(buffer_size=4000, num_envs=num_envs, device="cpu")
    if loop == "async":
        values["async_actor"] = True
    elif loop == "workers":
        values["env_workers"] = min(2, num_envs)
    elif loop == "ray":  # one actor stepping num_envs envs: env i is seeded (and streamed) as i
        values.update(ray="local", ray_actors=1, envs_per_actor=num_envs, num_envs=1)
    values.update(changes)
    return tiny_config(tmp_path, **values)


def same_step(cfg: TrainConfig) -> bool:
    """Whether an ended env is reset within the step that ended it (one env, or env workers), or on
    a vector step of its own (gymnasium's SyncVectorEnv, NEXT_STEP, which a Ray actor's envs are)."""
    if cfg.ray:
        return False
    return cfg.num_envs == 1 or cfg.env_workers > 0


class Run:
    """A trainer run with both recorders installed."""

    def __init__(self, tmp_path, monkeypatch, cfg: TrainConfig, *, envs: EnvRecorder = None,
                 max_episode_steps: int = None) -> None:
        self.cfg = cfg
        self.envs = envs or EnvRecorder(tmp_path / "envs", max_episode_steps).install(monkeypatch)
        install_replay_spy(monkeypatch)
        self.envs.watch_evaluation(monkeypatch, trainer_module)
        with contextlib.ExitStack() as stack:
            if cfg.ray:
                from support.inprocess_actors import Record, patch_ray_loop
                stack.enter_context(patch_ray_loop(Record(), atari=True))
            self.trainer = Trainer(cfg, "demo")
            self.summary = self.trainer.run()
        self.rb: SpyReplay = self.trainer.rb

    def logs(self, phase: str = "train"):
        logs = self.envs.logs(phase, same_step=same_step(self.cfg))
        if phase == "train":
            assert sorted(self.env_index(log) for log in logs) == list(range(self.cfg.replay_streams))
        return logs

    def env_index(self, log) -> int:
        # env i of a vector env is seeded seed + i: by the reset the loop makes, or (a Ray actor's envs,
        # reset without a seed) by make_atari_env's own first reset, which the game level records
        first = log.first_seed if log.first_seed is not None else log.reset_seeds[0]
        return first - self.trainer.env_seed

    def episodes_csv(self):
        with open(f"{self.trainer.run_dir}/episodes.csv") as f:
            return [(int(r["global_step"]), float(r["return"]), int(r["length"])) for r in csv.DictReader(f)]


# -- 1. reward clipping --------------------------------------------------------------------------------------
@pytest.mark.parametrize("loop, clip", [("sync", True), ("async", True), ("workers", True), ("ray", True),
                                        ("sync", False)])
def test_the_replay_gets_clipped_rewards_and_evaluation_the_real_score(tmp_path, monkeypatch, loop, clip):
    """Space Invaders pays 5 to 30 points an alien, so clipping shows: with clip_rewards every stored
    reward is sign(the game's reward for that step); without, the game's reward itself. The final
    evaluation's score is the game's unclipped score either way."""
    evaluate = loop == "sync" and clip  # (the evaluation is the same whichever loop trained)
    cfg = tiny(tmp_path, loop, num_envs=2, env_id="ALE/SpaceInvaders-v5", total_steps=200, clip_rewards=clip,
               eval_episodes=1 if evaluate else 0, eval_epsilon=1.0)
    run = Run(tmp_path, monkeypatch, cfg)
    raw_all = []
    for log in run.logs():
        raw = [s.raw_reward for s in log.steps]
        stored = [w.reward for w in run.rb.transitions(run.env_index(log))]
        assert stored == (np.sign(raw).tolist() if clip else raw)
        raw_all += raw
    assert max(raw_all) > 1  # the game paid more than 1 for a step: clipping made a difference
    if not evaluate:
        return
    (evaluation,) = run.logs("eval")
    (game,) = evaluation.games
    assert run.summary["eval_returns"] == [game.ret] and game.ret > 1


# -- 2. truncation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", LOOPS_WITH_RAY)
def test_a_truncated_step_is_stored_truncated_with_its_real_last_frame_and_bootstraps(tmp_path, monkeypatch, loop):
    """A game cut off by a time limit is not a terminal state: its last transition is stored with
    terminated False and truncated True and ends at the game's real last frame (not the next game's
    first), so the learner's TD target bootstraps from that frame."""
    limit = 30  # games cut off after 30 steps
    cfg = tiny(tmp_path, loop, num_envs=2, total_steps=300, double_dqn=False)  # (the target below is DQN's)
    run = Run(tmp_path, monkeypatch, cfg, max_episode_steps=limit)
    cut = []
    for log in run.logs():
        stored = run.rb.transitions(run.env_index(log))
        assert len(stored) == len(log.steps)
        for w, step in zip(stored, log.steps):
            if step.truncated and not step.terminated:
                assert (w.terminated, w.truncated) == (False, True)
                assert np.array_equal(w.frame, step.obs)
                cut.append((w.write, step.obs))
    assert len(cut) >= 4
    batch = run.rb.gather(np.array([write for write, _ in cut]))  # as the learner samples them
    assert not batch.terminated.any() and batch.truncated.all()
    for k, (_, last) in enumerate(cut):
        assert np.array_equal(batch.next_obs[k, -1], last)
    learner = run.trainer.learner
    with torch.no_grad():
        best_next = learner.target_network(torch.from_numpy(batch.next_obs)).max(dim=1).values.numpy()
    np.testing.assert_allclose(learner.targets(batch), batch.reward + batch.discount * best_next, rtol=1e-5,
                               atol=1e-6)


# -- 3. no transition across a reset ------------------------------------------------------------------------
def _key(prev, action, reward, frame, terminated, truncated):
    return prev.tobytes(), int(action), float(reward), frame.tobytes(), bool(terminated), bool(truncated)


@pytest.mark.parametrize("loop", LOOPS_WITH_RAY)
def test_every_stored_transition_is_a_real_env_step(tmp_path, monkeypatch, loop):
    """With several envs, each env stream of the replay holds exactly that env's steps, in order:
    no transition from an episode's last frame to the next episode's first (gymnasium's NEXT_STEP
    autoreset returns such a step, which is a reset, not a transition)."""
    limit = 30  # games cut off after 30 steps: many resets
    cfg = tiny(tmp_path, loop, num_envs=3, total_steps=300)
    run = Run(tmp_path, monkeypatch, cfg, max_episode_steps=limit)
    real, resets = [], 0
    for log in run.logs():
        steps = [_key(s.prev_obs, s.action, s.reward, s.obs, s.terminated, s.truncated) for s in log.steps]
        stored = [_key(w.prev, w.action, w.reward, w.frame, w.terminated, w.truncated)
                  for w in run.rb.transitions(run.env_index(log))]
        assert len(stored) == len(steps), f"env {run.env_index(log)}: {len(stored)} transitions for {len(steps)} steps"
        for k, (a, b) in enumerate(zip(stored, steps)):
            assert a == b, f"env {run.env_index(log)}: transition {k} is not the env's step {k}"
        real += steps
        resets += sum(s.terminated or s.truncated for s in log.steps)
    assert resets >= 3 * cfg.num_envs
    # what the replay holds, read back as the learner samples it, is that set of steps
    held = run.rb.gather(run.rb.valid_indices())
    assert Counter(_key(held.obs[k, -1], held.action[k], held.reward[k], held.next_obs[k, -1], held.terminated[k],
                        held.truncated[k]) for k in range(len(held.index))) == Counter(real)


# -- 4. episodes.csv ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", LOOPS_WITH_RAY)
def test_episodes_csv_lists_the_games_the_envs_finished(tmp_path, monkeypatch, loop):
    """One row per real game an env finished (game over or time limit), with the game's return and
    length and the agent step it ended at; none for envs still playing at that step."""
    limit = 30  # games cut off after 30 steps
    cfg = tiny(tmp_path, loop, num_envs=3, total_steps=300)
    run = Run(tmp_path, monkeypatch, cfg, max_episode_steps=limit)
    expected = sorted((g.vector_step * cfg.num_envs, g.ret, g.length) for log in run.logs() for g in log.games)
    assert len(expected) >= 6
    if cfg.ray:  # a game is logged when the chunk that ended it reaches the replay: at a later step
        assert sorted(row[1:] for row in run.episodes_csv()) == sorted(row[1:] for row in expected)
        return
    assert sorted(run.episodes_csv()) == expected
    assert list(run.trainer.recent_returns) == [ret for _, ret, _ in run.episodes_csv()]  # avg100's games


# -- 5. gamma and n-step returns --------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", LOOPS_WITH_RAY)
def test_sampled_n_step_returns_use_the_configured_gamma(tmp_path, monkeypatch, loop):
    """With gamma 0.5 and n_step 3 every sampled transition's discount is 0.5^m and its reward the
    0.5-discounted sum of the m rewards it spans (m = 3, or fewer where the episode ended), both
    recomputed from the frames written to the replay."""
    limit = 30  # games cut off after 30 steps
    cfg = tiny(tmp_path, loop, num_envs=2, total_steps=300, gamma=0.5, n_step=3)
    run = Run(tmp_path, monkeypatch, cfg, max_episode_steps=limit)
    where = {}
    for env in run.rb.streams:
        stream = run.rb.transitions(env)
        where.update({w.write: (stream, k) for k, w in enumerate(stream)})
    spans = Counter()
    for sample in run.rb.samples:
        for index, reward, discount, terminated in zip(sample["index"], sample["reward"], sample["discount"],
                                                       sample["terminated"]):
            stream, k = where[int(index)]
            window = []
            for w in stream[k:k + 3]:
                window.append(w)
                if w.terminated or w.truncated:
                    break
            m = len(window)
            assert discount == pytest.approx(0.5 ** m)
            assert reward == pytest.approx(sum(0.5 ** j * w.reward for j, w in enumerate(window)))
            assert terminated == window[-1].terminated
            spans[m] += 1
    assert len(run.rb.samples) > 10 and spans[3] > 0 and spans[1] + spans[2] > 0


# -- 6. resume over a replay made with other settings ------------------------------------------------------------
@pytest.mark.parametrize("option, value, setting, old, new", [
    ("--n-step", "3", "n_step", 1, 3),
    ("--gamma", "0.9", "gamma", 0.99, 0.9),
    ("--frame-size", "44", "frame_size", 36, 44),  # (a network of another shape: refused before loading it)
])
def test_resume_refuses_a_replay_snapshot_made_with_other_settings(tmp_path, capsys, option, value, setting, old,
                                                                   new):
    """The replay computes n-step returns with its own n_step and gamma: a resume that changes either
    must be refused (with the setting named), not continue on returns the config did not ask for.
    A frame size the checkpoint's network and replay were not made for is refused as clearly."""
    first = Trainer(tiny(tmp_path, total_steps=120), "demo")
    first.run()
    capsys.readouterr()
    rc = train.main(["--resume", first.checkpoints.path, option, value, "--total-steps", "200", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert setting in err and f"{old}" in err and f"{new}" in err, err
    assert ckpt.load_training_checkpoint(first.checkpoints.path)["counters"]["global_step"] == 120  # nothing ran


# -- 7. a resumed run plays new games ---------------------------------------------------------------------------
@pytest.mark.parametrize("loop", LOOPS)
def test_a_resumed_run_seeds_its_envs_anew(tmp_path, monkeypatch, loop):
    """The envs of a resumed run are given seeds the first run's envs were not, so it does not
    replay the games it has already played."""
    envs = EnvRecorder(tmp_path / "envs").install(monkeypatch)
    cfg = tiny(tmp_path, loop, num_envs=2, total_steps=120)
    first = Run(tmp_path, monkeypatch, cfg, envs=envs)
    envs.set_phase("resumed")
    state = ckpt.load_training_checkpoint(first.trainer.checkpoints.path)
    resumed = Trainer(TrainConfig.from_dict(state["config"]).replace(total_steps=240), "demo", state,
                      run_dir=first.trainer.run_dir)
    resumed.run()
    seeds = [s for log in envs.logs("train", same_step=same_step(cfg)) for s in log.reset_seeds]
    seeds_after = [s for log in envs.logs("resumed", same_step=same_step(cfg)) for s in log.reset_seeds]
    assert len(seeds) == len(seeds_after) == cfg.num_envs  # each env seeded once, at its first reset
    assert not set(seeds) & set(seeds_after)


# -- 8. bf16 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", ["sync", "async"])
@pytest.mark.parametrize("bf16", [False, True])
def test_bf16_runs_the_updates_network_passes_in_bfloat16(tmp_path, monkeypatch, loop, bf16):
    """With bf16 the update's network passes run under bfloat16 autocast (seen as the dtype of the
    target network's output: that network runs only in updates). torch.compile is replaced by the
    function itself: what is pinned is that the setting reaches the update step update_mode
    'compile' builds, not inductor's code (which would take tens of seconds to build on 2 cores)."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    trainer = Trainer(tiny(tmp_path, loop, total_steps=140, update_mode="compile", bf16=bf16), "demo")
    dtypes = []
    trainer.learner.target_network.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    trainer.run()
    assert len(dtypes) >= 10
    assert set(dtypes) == {torch.bfloat16 if bf16 else torch.float32}


def test_bf16_is_refused_where_the_update_would_run_eagerly(tmp_path):
    """update_mode auto is the eager update on a CPU, which has no bf16: the run must say so, not
    train in float32 while the config says bf16."""
    with pytest.raises(ValueError, match="bf16"):
        Trainer(tiny(tmp_path, total_steps=140, bf16=True), "demo")


@pytest.mark.parametrize("dot_products", ["", "avx512_bf16", None])
def test_bf16_on_a_cpu_without_bfloat16_dot_products_warns_that_it_is_slower(tmp_path, monkeypatch, dot_products):
    """Without avx512_bf16 or amx_bf16 the bf16 update is several times slower than float32 on a
    CPU (5.3x measured with AVX2 kernels): the run goes on as asked, with a warning saying so; a
    CPU that has them gets none, and so does one whose flags cannot be read (None: not Linux)."""
    from dqnfast import fast_update
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    monkeypatch.setattr(fast_update, "bf16_dot_products", lambda: dot_products)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(tiny(tmp_path, total_steps=140, update_mode="compile", bf16=True), "demo")
    slow = [w for w in caught if issubclass(w.category, RuntimeWarning) and "bfloat16 dot products" in str(w.message)]
    assert len(slow) == (1 if dot_products == "" else 0)


# -- 9. step counting ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", LOOPS)
def test_agent_steps_are_the_env_steps_summed_over_envs(tmp_path, monkeypatch, loop):
    """An agent step is one step of one env: a run of total_steps with 3 envs steps each env
    total_steps / 3 times, counts what they stepped, and updates once per train_frequency of those
    after learning_starts."""
    limit = 40  # games cut off after 40 steps
    cfg = tiny(tmp_path, loop, num_envs=3, total_steps=300, learning_starts=60)
    run = Run(tmp_path, monkeypatch, cfg, max_episode_steps=limit)
    stepped = sum(log.vector_steps for log in run.logs())
    assert stepped == cfg.total_steps
    assert run.summary["global_step"] == stepped
    assert ckpt.load_training_checkpoint(run.trainer.checkpoints.path)["counters"]["global_step"] == stepped
    assert len(run.rb.samples) == (stepped - cfg.learning_starts) // cfg.train_frequency  # one batch per update
    assert run.summary["updates"] == len(run.rb.samples)


# -- 10. DRQN's time index ---------------------------------------------------------------------------------------
def test_drqn_loss_at_step_t_uses_the_q_of_the_action_taken_at_t(one_torch_thread):
    """The loss of a DRQN update, recomputed here by unrolling the LSTM by hand: at step t the
    online Q-value of the action taken at t after the frames up to t, against r_t + gamma (1 -
    terminated_t) max_a Q_target(frames up to t + 1, a); burn-in and padding steps carry no loss.
    Both the loss and its gradient must match the update's."""
    shape = (36, 36)
    learner = DRQNLearner(3, frame_shape=shape, hidden=16, gamma=0.9, burn_in=1, device="cpu", seed=0,
                          target_update_interval=1000, optimizer="adam")
    with torch.no_grad():  # a target network that differs from the online one
        for p in learner.target_network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    rb = ReplayBuffer(400, frame_shape=shape, stack=1, seed=0)
    env = PixelEnv(0, frame_shape=shape, max_steps=7, p_terminate=0.15, seed=1)
    rng = np.random.default_rng(2)
    rb.start_episode(env.reset()[0])
    for _ in range(120):
        action = int(rng.integers(3))
        obs, reward, terminated, truncated, _ = env.step(action)
        rb.add(action, reward, obs, terminated, truncated)
        if terminated or truncated:
            rb.start_episode(env.reset()[0])
    seq = rb.sample_sequences(6, 5)
    assert not seq.mask.all() and seq.terminated.any()  # padded starts and terminal steps are in the batch

    online, target = copy.deepcopy(learner.q_network), copy.deepcopy(learner.target_network)
    params = dict(online.named_parameters())

    def unroll(net, b, first, last):
        """Q-values of sequence b after each of its frames first..last, from a zero LSTM state."""
        h = c = torch.zeros(1, net.hidden)
        out = []
        for t in range(first, last + 1):
            x = torch.from_numpy(seq.frames[b, t]).float()[None, None] / 255.0
            h, c = net.lstm(net.encoder(x), (h, c))
            out.append(net.head(h)[0])
        return out

    losses, weights, qs = [], [], []
    for b in range(seq.action.shape[0]):
        first = int(np.argmax(seq.mask[b]))  # steps before the episode's first frame are padding
        q_online = unroll(online, b, first, seq.action.shape[1] - 1)
        with torch.no_grad():
            q_target = unroll(target, b, first, seq.action.shape[1])
        for t in range(first, seq.action.shape[1]):
            q = q_online[t - first][int(seq.action[b, t])]
            y = float(seq.reward[b, t]) + 0.9 * (1.0 - float(seq.terminated[b, t])) * float(q_target[t - first + 1].max())
            w = 0.0 if t < 1 else 1.0  # burn_in = 1
            losses.append(w * F.smooth_l1_loss(q, torch.tensor(y)))
            qs.append(w * q.detach())
            weights.append(w)
    expected = torch.stack(losses).sum() / sum(weights)
    expected_grads = torch.autograd.grad(expected, list(params.values()))
    expected = expected.detach()

    seen = {}
    step = learner.optimizer_step

    def spy(loss, q_mean, metrics=True):
        seen["grads"] = torch.autograd.grad(loss, list(learner.q_network.parameters()), retain_graph=True)
        return step(loss, q_mean, metrics)

    learner.optimizer_step = spy
    metrics = learner.update(seq)
    assert metrics["td_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert metrics["q_values"] == pytest.approx(float(sum(qs) / sum(weights)), rel=1e-5, abs=1e-7)
    for got, want in zip(seen["grads"], expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
