"""Each TrainConfig field that no other test pinned, pinned here by what a run does with it (issue 17).

tests/train/CONFIG_FIELDS.md lists every field with the test that fails if the field is silently
ignored (the code using the default instead). Every test here sets its field to a value other than
the default and checks an outcome against a record kept outside the code under test: the emulator's
own frame counter, lives and screen; the states the network was shown; the batches the replay
handed out and the loss the optimizer was handed, recomputed from the networks; the actions the env
received against the network's greedy ones; the files of the run folder and what the run printed.

Most runs train on a fake game (tests/support/pixel_env.py, with Breakout's four actions) so that
they take a second or two; the env settings are checked on the trainer's real Atari env and on the
env a Ray actor builds (``--ray``'s own use of the settings). One run serves several tests: a field
ignored fails its own test, whatever the other fields do.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gym = pytest.importorskip("gymnasium")
pytest.importorskip("ale_py")

import torch.nn.functional as F  # noqa: E402
from support.frames import check_stack, make_frame  # noqa: E402
from support.pixel_env import PixelEnv  # noqa: E402
from support.evaluation_spies import Spy, assert_epsilon_played, constant_left_checkpoint, non_greedy  # noqa: E402
from support.tiny_config import quick  # noqa: E402

from dqnfast import Batch  # noqa: E402
from dqnfast import checkpoint as ckpt  # noqa: E402
from dqnfast import evaluate  # noqa: E402
from dqnfast.config import TrainConfig, preset  # noqa: E402
from dqnfast.preprocessing import preprocess  # noqa: E402
from dqnfast.recurrent import DRQNLearner  # noqa: E402
from dqnfast.train import Trainer  # noqa: E402
from dqnfast.train import trainer as trainer_module  # noqa: E402

DEFAULT = TrainConfig()


def tiny(run_dir, name="run", **changes) -> TrainConfig:
    """The quick tiny config (tests/support/tiny_config.py), on the CPU."""
    return quick(run_dir, name, **{"device": "cpu", **changes})


class FakeGame(PixelEnv):
    """Self-identifying frames (support/frames.py) and Breakout's four actions, so that a learner
    trained on it can play the real Breakout in the final evaluation."""

    def __init__(self, frame_size: int, seed: int) -> None:
        super().__init__(0, frame_shape=(frame_size, frame_size), max_steps=20, p_terminate=0.05, seed=seed)
        self.action_space = gym.spaces.Discrete(4)


def play_fake_game(mp) -> None:
    """The Trainer trains on FakeGame (its final evaluation, dqnfast.evaluate's, stays on Atari)."""
    def make_env(cfg, *, num_envs, seed, evaluation=False):
        assert num_envs == 1 and not evaluation
        return FakeGame(cfg.frame_size, seed)

    mp.setattr(trainer_module, "make_env", make_env)
    mp.setattr(trainer_module, "plot_learning_curve", lambda *args, **kwargs: None)


@contextlib.contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def record_actions(trainer, acted) -> None:
    """Appends to ``acted``, at each env step, the action the env received and the network's greedy
    one for the state the actor saw (the replay's newest stack)."""
    learner, rb, env = trainer.learner, trainer.rb, trainer.env
    env_step = env.step

    def step(action):
        with torch.no_grad():
            greedy = int(learner.q_network(torch.from_numpy(rb.stacked(0)[None])).argmax())
        acted.append((int(action), greedy))
        return env_step(action)

    env.step = step


# -- a DQN run: stack, replay capacity, loss, Double DQN, optimizer, logs, output, epsilons --------------
@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory):
    cfg = tiny(tmp_path_factory.mktemp("dqn"), total_steps=260, stack=2, buffer_size=100, loss="mse",
               double_dqn=True, target_update_interval=1000, learning_rate=7e-4, adam_eps=1e-3, log_interval=3,
               start_epsilon=0.3,
               exploration_steps=10_000, eval_episodes=1, eval_epsilon=0.6)
    rec = SimpleNamespace(cfg=cfg, inputs=[], acted=[], samples=[], losses=[], eval_games=[], eval_greedy=[])
    with pytest.MonkeyPatch.context() as mp, one_thread():
        play_fake_game(mp)
        trainer = Trainer(cfg, "demo")
        learner, rb = trainer.learner, trainer.rb
        with torch.no_grad():  # a target network unlike the online one (it is not synced in this run)
            noise = torch.Generator().manual_seed(0)
            for p in learner.target_network.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=noise))
        learner.q_network.register_forward_hook(
            lambda module, args, out: rec.inputs.append(args[0].detach().numpy().copy()))

        record_actions(trainer, rec.acted)
        sample = rb.sample

        def spy_sample(batch_size, out=None, **kw):  # the batch, and the losses it should give, from the networks
            writes = rb.writes
            b = sample(batch_size, out=out, **kw)
            with torch.no_grad():
                obs, nxt = torch.from_numpy(b.obs.copy()), torch.from_numpy(b.next_obs.copy())
                q = learner.q_network(obs).gather(1, torch.from_numpy(b.action).long()[:, None]).squeeze(1)
                online_next, target_next = learner.q_network(nxt), learner.target_network(nxt)
            r, d = torch.from_numpy(b.reward.copy()), torch.from_numpy(b.discount.copy())
            alive = 1.0 - torch.from_numpy(b.terminated.astype(np.float32))
            y_double = r + d * alive * target_next.gather(1, online_next.argmax(1, keepdim=True)).squeeze(1)
            y_max = r + d * alive * target_next.max(1).values
            rec.samples.append(dict(writes=writes, index=b.index.copy(), mse_double=F.mse_loss(q, y_double).item(),
                                    huber_double=F.smooth_l1_loss(q, y_double).item(),
                                    mse_max=F.mse_loss(q, y_max).item()))
            return b

        rb.sample = spy_sample
        optimizer_step = learner.optimizer_step

        def spy_step(loss, q_mean, metrics=True):
            rec.losses.append(loss.item())
            return optimizer_step(loss, q_mean, metrics)

        learner.optimizer_step = spy_step
        make_eval_env = evaluate.make_env

        def eval_env(*args, **kw):  # the final evaluation: its games, and the greedy action at each step
            learner.q_network.register_forward_hook(
                lambda module, args, q: rec.eval_greedy.extend(q.argmax(dim=1).tolist()))
            return Spy(make_eval_env(*args, **kw), rec.eval_games)

        mp.setattr(evaluate, "make_env", eval_env)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rec.summary = trainer.run()
        rec.output = out.getvalue() + err.getvalue()
        rec.trainer = trainer
    rec.run_dir = trainer.run_dir
    return rec


def test_stack_is_the_number_of_frames_in_each_state_the_network_sees(dqn_run):
    """stack 2: every state given to the network (acting and learning) holds 2 frames, and each
    state it acted on is its game's last 2 frames (decoded from the frames themselves)."""
    assert dqn_run.inputs and {x.shape[1:] for x in dqn_run.inputs} == {(2, 36, 36)}
    acting = [x[0] for x in dqn_run.inputs if x.shape[0] == 1][:260]
    full = 0
    for state in acting:
        _, pad = check_stack(state)
        full += pad == 0
    assert full > 200


def test_buffer_size_is_the_replays_capacity(dqn_run):
    """buffer_size 100: no sampled transition is older than the last 100 frames written, in a run
    that wrote more than twice as many."""
    samples = dqn_run.samples
    assert samples[-1]["writes"] > 2 * 100
    for s in samples:
        assert s["index"].min() >= s["writes"] - 100, (s["writes"], s["index"])


def test_loss_mse_is_the_squared_td_error(dqn_run):
    """loss mse: each loss the optimizer was handed is the mean squared TD error of its batch
    (recomputed from the networks and the batch), not the Huber loss."""
    assert len(dqn_run.losses) == len(dqn_run.samples) == (260 - 60) // 4
    for loss, s in zip(dqn_run.losses, dqn_run.samples):
        assert loss == pytest.approx(s["mse_double"], rel=1e-4, abs=1e-6)
        assert loss != pytest.approx(s["huber_double"], rel=1e-3)


def test_double_dqn_evaluates_the_online_networks_choice_with_the_target_network(dqn_run):
    """double_dqn: the loss uses r + discount * Q_target(s', argmax_a Q_online(s', a)), and that
    differs from the max over the target network in some of the run's updates."""
    differ = 0
    for loss, s in zip(dqn_run.losses, dqn_run.samples):
        assert loss == pytest.approx(s["mse_double"], rel=1e-4, abs=1e-6)
        differ += s["mse_max"] != pytest.approx(s["mse_double"], rel=1e-3)
    assert differ >= 5


@pytest.mark.parametrize("field", ["optimizer", "learning_rate", "adam_eps"])
def test_the_optimizer_steps_with_the_configured_settings(dqn_run, field):
    """The optimizer that stepped the network: Adam (the default is RMSProp), with learning_rate
    7e-4 and adam_eps 1e-3."""
    opt = dqn_run.trainer.learner.optimizer
    group = opt.param_groups[0]
    got = {"optimizer": type(opt).__name__, "learning_rate": group["lr"], "adam_eps": group.get("eps")}[field]
    assert got == {"optimizer": "Adam", "learning_rate": 7e-4, "adam_eps": 1e-3}[field]
    assert got != {"optimizer": "RMSprop", "learning_rate": DEFAULT.learning_rate, "adam_eps": DEFAULT.adam_eps}[field]
    assert len(dqn_run.losses) == 50  # (the optimizer stepped)


def test_log_interval_is_the_number_of_updates_between_loss_records(dqn_run):
    """log_interval 3: scalars.csv has a loss record after updates 3, 6, 9, ... of the 50 taken."""
    with open(os.path.join(dqn_run.run_dir, "scalars.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    updates = [int(float(r["value"])) for r in rows if r["tag"] == "charts/updates"]
    assert updates == list(range(3, len(dqn_run.losses) + 1, 3))
    assert sum(r["tag"] == "losses/td_loss" for r in rows) == len(dqn_run.losses) // 3


def test_no_tensorboard_writes_no_event_files(dqn_run):
    files = os.listdir(dqn_run.run_dir)
    assert "scalars.csv" in files and not [f for f in files if "tfevents" in f], files


def test_no_progress_shows_no_progress_bar(dqn_run):
    assert "step" not in dqn_run.output and "%|" not in dqn_run.output, dqn_run.output[-500:]


@pytest.mark.parametrize("after_warmup", [True, False])
def test_exploration_after_warmup_starts_the_decay_when_learning_starts(tmp_path, after_warmup):
    """ε from 1 to 0 over 100 steps, after 60 random ones: counted from the warm-up's end, the 100
    steps after it take a non-greedy action about 0.75 * 50.5 = 38 times; counted from step 0, about
    0.75 * 8.2 = 6 times (ε is 0.4 when learning starts and 0 from step 100)."""
    cfg = tiny(tmp_path, total_steps=160, start_epsilon=1.0, end_epsilon=0.0, exploration_steps=100,
               exploration_after_warmup=after_warmup)
    assert cfg.learning_starts == 60
    acted = []
    with pytest.MonkeyPatch.context() as mp, one_thread():
        play_fake_game(mp)
        trainer = Trainer(cfg, "demo")
        record_actions(trainer, acted)
        trainer.run()
    after = acted[cfg.learning_starts:]
    assert len(acted) == 160 and len(after) == 100
    origin = cfg.learning_starts if after_warmup else 0
    expected = sum(0.75 * max(0.0, 1 - (cfg.learning_starts + k - origin) / 100) for k in range(len(after)))
    off = sum(action != greedy for action, greedy in after)
    assert expected / 2 <= off <= expected * 1.5 + 3, (off, expected)


def test_start_epsilon_is_the_exploration_rate_when_learning_starts(dqn_run):
    """start_epsilon 0.3 (end 0.01 over 10,000 steps): after the 60 random steps, the actions the
    env received differ from the network's greedy one about 0.75 * 0.3 of the time (a random
    action is the greedy one in 1 of 4), against 0.75 at the default 1.0."""
    cfg = dqn_run.cfg
    after = dqn_run.acted[cfg.learning_starts:]
    assert len(dqn_run.acted) == 260 and len(after) == 200
    expected = sum(0.75 * (0.3 + (0.01 - 0.3) * (cfg.learning_starts + k) / 10_000) for k in range(len(after)))
    off = sum(action != greedy for action, greedy in after)
    assert expected / 2 <= off <= expected * 1.5, (off, expected)


def test_the_final_evaluation_plays_eval_epsilon(dqn_run):
    """eval_epsilon 0.6: the final evaluation's game (real Breakout) was played with actions other
    than the network's greedy one about 0.75 * 0.6 of the time (the default 0.05: 0.04)."""
    assert len(dqn_run.eval_games) == 1 and len(dqn_run.summary["eval_returns"]) == 1
    assert len(dqn_run.eval_greedy) == len(dqn_run.eval_games[0]["steps"])
    chosen, off = non_greedy(dqn_run.eval_games, lambda k: dqn_run.eval_greedy[k])
    assert_epsilon_played(chosen, off, epsilon=0.6, min_steps=60)


def test_dqnfast_evaluate_plays_the_checkpoints_eval_epsilon(tmp_path, monkeypatch, capsys, one_torch_thread):
    """`dqnfast evaluate RUN/checkpoint.pt` without --epsilon plays the run's eval_epsilon (0.6 here)."""
    cfg = preset("demo", frame_size=36, crop=None, noop_max=5, eval_epsilon=0.6)
    path = tmp_path / "checkpoint.pt"
    constant_left_checkpoint(path, cfg)  # the greedy action is LEFT in every state
    games = []
    make_env = evaluate.make_env
    monkeypatch.setattr(evaluate, "make_env", lambda *a, **kw: Spy(make_env(*a, **kw), games))
    assert evaluate.main([str(path), "--episodes", "1", "--max-steps", "200", "--device", "cpu", "--json"]) == 0
    capsys.readouterr()
    assert_epsilon_played(*non_greedy(games), epsilon=0.6, min_steps=60)


# -- a DRQN run: sequence length, LSTM size, burn-in, gamma -------------------------------------------------
@pytest.fixture(scope="module")
def drqn_run(tmp_path_factory):
    """Each update's loss beside the losses of reference DRQN learners (dqnfast.recurrent, whose loss
    tests/train/test_train_behaviour.py checks by hand) built with explicit settings and the
    trainer's weights of that moment, on the same sequences."""
    cfg = tiny(tmp_path_factory.mktemp("drqn"), total_steps=120, recurrent=True, sequence_length=3, lstm_hidden=16,
               burn_in=1, gamma=0.5)
    rec = SimpleNamespace(cfg=cfg, lengths=[], losses=[])
    with pytest.MonkeyPatch.context() as mp, one_thread():
        play_fake_game(mp)
        trainer = Trainer(cfg, "demo")
        learner = trainer.learner
        hidden = learner.q_network.lstm.hidden_size  # (lstm_hidden's own test reads the checkpoint)
        settings = {"configured": (0.5, 1), "gamma 0.99": (0.99, 1), "burn_in 0": (0.5, 0)}
        refs = {name: DRQNLearner(4, frame_shape=(36, 36), gamma=g, hidden=hidden, burn_in=b, loss=cfg.loss,
                                  double_dqn=cfg.double_dqn, device="cpu", seed=0)
                for name, (g, b) in settings.items()}
        update = learner.update

        def spy_update(seq):
            rec.lengths.append((seq.action.shape[1], seq.frames.shape[1]))
            online, target = learner.q_network.state_dict(), learner.target_network.state_dict()
            losses = {}
            for name, ref in refs.items():
                ref.q_network.load_state_dict(online)
                ref.target_network.load_state_dict(target)
                losses[name] = ref.update(seq)["td_loss"]
            m = update(seq)
            losses["trainer"] = m["td_loss"]
            rec.losses.append(losses)
            return m

        learner.update = spy_update
        rec.summary = trainer.run()
    return rec


def test_sequence_length_is_the_length_of_the_replayed_sequences(drqn_run):
    assert len(drqn_run.lengths) == (120 - 60) // 4
    assert set(drqn_run.lengths) == {(3, 4)}  # 3 steps, their 4 frames


def test_lstm_hidden_is_the_size_of_the_trained_lstm(drqn_run):
    weights = ckpt.load_training_checkpoint(drqn_run.summary["checkpoint"])["learner"]["q_network"]
    assert tuple(weights["lstm.weight_hh"].shape) == (4 * 16, 16)


@pytest.mark.parametrize("field, other", [("gamma", "gamma 0.99"), ("burn_in", "burn_in 0")])
def test_drqn_updates_use_the_configured_gamma_and_burn_in(drqn_run, field, other):
    """Each update's loss is the loss of a DRQN learner with gamma 0.5 and burn_in 1 on the same
    sequences and weights, and not that of one with the default gamma (or burn_in)."""
    differ = 0
    for losses in drqn_run.losses:
        assert losses["trainer"] == pytest.approx(losses["configured"], rel=1e-5, abs=1e-7)
        differ += losses[other] != pytest.approx(losses["configured"], rel=1e-3)
    assert differ >= len(drqn_run.losses) // 2


# -- a prioritized run: priority_alpha, priority_beta, priority_eps -----------------------------------------
@pytest.fixture(scope="module")
def prioritized_run(tmp_path_factory):
    cfg = tiny(tmp_path_factory.mktemp("per"), total_steps=120, prioritized=True, priority_alpha=0.0,
               priority_beta=0.3, priority_eps=0.25)
    rec = SimpleNamespace(cfg=cfg, betas=[], weights=[], td=[], priorities=[])
    with pytest.MonkeyPatch.context() as mp, one_thread():
        play_fake_game(mp)
        trainer = Trainer(cfg, "demo")
        rb, learner = trainer.rb, trainer.learner
        sample, update_priorities = rb.sample, rb.update_priorities

        def spy_sample(batch_size, beta=0.4, out=None, **kw):  # the exponent asked for, the weights given
            b = sample(batch_size, beta, out=out, **kw)
            rec.betas.append(beta)
            rec.weights.append(b.weights.copy())
            with torch.no_grad():  # each row's |TD error| before the update, from the networks
                q = learner.q_network(torch.from_numpy(b.obs.copy())).gather(
                    1, torch.from_numpy(b.action).long()[:, None]).squeeze(1)
            rec.td.append(np.abs(learner.targets(Batch(*b[:8])) - q.numpy()))
            return b

        def spy_update(index, priorities):
            rec.priorities.append(np.array(priorities, np.float64))
            return update_priorities(index, priorities)

        rb.sample, rb.update_priorities = spy_sample, spy_update
        trainer.run()
    return rec


def test_priority_alpha_zero_samples_uniformly(prioritized_run):
    """priority_alpha 0: priorities do not count, every importance weight is 1 (with the default
    0.5 the TD errors of the run make them differ)."""
    assert len(prioritized_run.weights) == 15
    assert any(p.max() > 1.5 * p.min() for p in prioritized_run.priorities)  # priorities that would count
    for w in prioritized_run.weights:
        np.testing.assert_allclose(w, 1.0, rtol=1e-6)


def test_priority_beta_is_the_importance_exponent_of_the_first_update(prioritized_run):
    betas = prioritized_run.betas
    assert betas[0] == pytest.approx(0.3) and betas[-1] == pytest.approx(1.0)
    assert all(b2 > b1 for b1, b2 in zip(betas, betas[1:]))


def test_priority_eps_is_added_to_each_td_error(prioritized_run):
    assert len(prioritized_run.priorities) == 15
    for td, priorities in zip(prioritized_run.td, prioritized_run.priorities):
        np.testing.assert_allclose(priorities, td + 0.25, rtol=1e-5, atol=1e-6)


# -- settings read when the Trainer is built: seed, device, torch_threads ----------------------------------
def test_seed_sets_the_network_the_replay_draws_and_epsilon_greedy(tmp_path, monkeypatch, one_torch_thread):
    """Two trainers with seed 7 start alike and unlike one with the default seed: the network's
    initial weights, the transitions the replay draws from the same contents, the random actions.
    (The envs' seeds: test_train_parts.py::test_the_trainers_vector_env_seeds_are_seed_plus_i.)"""
    play_fake_game(monkeypatch)

    def start(name, **seed):
        trainer = Trainer(tiny(tmp_path, name, **seed), "demo")
        weights = [p.detach().clone() for p in trainer.learner.q_network.parameters()]
        rb = trainer.rb
        for k in range(1, 60):  # the same transitions in each replay
            rb.add(k % 4, 0.0, make_frame(0, 0, k, (36, 36)), False)
        draws = [rb.sample(8).index.tolist() for _ in range(3)]
        state = rb.stacked(0)
        actions = [trainer.learner.act(state, 1.0) for _ in range(30)]
        trainer.log.close()
        return weights, draws, actions

    a, b, default = start("a", seed=7), start("b", seed=7), start("c")
    assert all(torch.equal(x, y) for x, y in zip(a[0], b[0])) and a[1:] == b[1:]
    assert not all(torch.equal(x, y) for x, y in zip(a[0], default[0]))
    assert a[1] != default[1]
    assert a[2] != default[2]


def test_device_is_where_the_learner_runs(tmp_path, monkeypatch, one_torch_thread):
    """device cpu on a CUDA machine keeps the learner on the CPU (auto would take the GPU); device
    cuda on a machine without CUDA is refused (auto would train on the CPU)."""
    play_fake_game(monkeypatch)
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        trainer = Trainer(tiny(tmp_path, device="cpu"), "demo")
        assert {p.device.type for p in trainer.learner.q_network.parameters()} == {"cpu"}
        trainer.log.close()
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            Trainer(tiny(tmp_path, device="cuda"), "demo")


def test_torch_threads_sets_torchs_intra_op_threads(tmp_path, monkeypatch, one_torch_thread):
    play_fake_game(monkeypatch)
    assert torch.get_num_threads() == 1
    Trainer(tiny(tmp_path, torch_threads=2), "demo").log.close()
    assert torch.get_num_threads() == 2


# -- the env settings, on the trainer's Atari env and on a Ray actor's -------------------------------------
ENV = dict(env_id="ALE/SpaceInvaders-v5", frame_size=40, crop=(20, 200, 8, 152), interp="area", gray="mean",
           frame_skip=3, noop_max=3, fire_reset=False, episodic_life=False, clip_rewards=False)
FIRE = 1


def probe(env) -> SimpleNamespace:
    """What the game did, read from the emulator: the frame number and screen after resets with
    six seeds, then a game of FIRE until the first lost life (per step: frames emulated, reward,
    flags, lives)."""
    ale = env.unwrapped.ale
    out = SimpleNamespace(actions=int(env.action_space.n), resets=[], steps=[])
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        out.resets.append((ale.getEpisodeFrameNumber(), np.array(obs), ale.getScreenRGB().copy()))
    env.reset(seed=10)
    lives = ale.lives()
    for _ in range(400):
        frame = ale.getEpisodeFrameNumber()
        _, reward, terminated, truncated, _ = env.step(FIRE)
        out.steps.append((ale.getEpisodeFrameNumber() - frame, reward, terminated, truncated, lives, ale.lives()))
        lives = ale.lives()
        if out.steps[-1][5] < out.steps[-1][4] or terminated or truncated:
            break
    return out


@pytest.fixture(scope="module")
def env_probes(tmp_path_factory):
    """The env the Trainer trains on, and the env the Ray loop's actors build (ray_loop.actor_pool,
    Ray itself not started), each probed."""
    from dqnfast.train import ray_loop

    cfg = tiny(tmp_path_factory.mktemp("env"), total_steps=10, stack=2, **ENV)
    probes = {}
    with one_thread():
        trainer = Trainer(cfg, "demo")
        try:
            probes["trainer"] = probe(trainer.env)
        finally:
            trainer.env.close()
            trainer.log.close()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ray_loop, "require_ray", lambda: SimpleNamespace(is_initialized=lambda: False))
            pool = ray_loop.actor_pool(SimpleNamespace(cfg=cfg.replace(ray="local", ray_actors=1, envs_per_actor=1),
                                                       num_actions=trainer.num_actions, env_seed=5))
        venv = pool.env_fn(0, 1, 5)
        try:
            probes["ray actor"] = probe(venv.envs[0])
        finally:
            venv.close()
    probes.update(pool=pool, learner=trainer.learner, cfg=cfg)
    return probes


def _frames_are(p, **settings) -> bool:
    kw = {"crop": ENV["crop"], "interp": ENV["interp"], "gray": ENV["gray"], **settings}
    return all(np.array_equal(obs, preprocess(screen, size=(40, 40), **kw)) for _, obs, screen in p.resets)


def _check_env(field, p) -> None:
    frames = [n for n, _, _ in p.resets]
    lost = [s for s in p.steps if s[5] < s[4]]
    if field == "env_id":  # Space Invaders has 6 actions, Breakout 4
        assert p.actions == 6
    elif field == "frame_size":
        assert {obs.shape for _, obs, _ in p.resets} == {(40, 40)}
    elif field in ("crop", "interp", "gray"):  # each frame is the emulator's screen so preprocessed
        assert _frames_are(p) and not _frames_are(p, **{field: getattr(DEFAULT, field)})
    elif field == "frame_skip":
        assert len(p.steps) > 50 and {s[0] for s in p.steps} == {3}
    elif field == "noop_max":  # 1 to 3 no-op frames after each reset, the number drawn per game
        assert set(frames) <= {1, 2, 3} and len(set(frames)) > 1, frames
    elif field == "fire_reset":  # FIRE then RIGHT at a reset would emulate 2 * frame_skip frames more
        assert max(frames) <= 3, frames
    elif field == "episodic_life":  # a lost life does not end the episode
        assert lost and not any(s[2] for s in p.steps), p.steps[-3:]
    elif field == "clip_rewards":  # Space Invaders pays 5 to 30 points an alien
        assert max(s[1] for s in p.steps) > 1
    else:  # pragma: no cover
        raise AssertionError(field)


@pytest.mark.parametrize("where", ["trainer", "ray actor"])
@pytest.mark.parametrize("field", list(ENV))
def test_the_env_settings_reach_the_game(env_probes, field, where):
    assert getattr(env_probes["cfg"], field) != getattr(DEFAULT, field)
    _check_env(field, env_probes[where])


def test_ray_actors_act_on_stacks_of_stack_frames_with_the_learners_network(env_probes):
    """A Ray actor built as the pool describes it takes the learner's weights (a network for stack
    2) and acts on states of 2 frames."""
    from dqnfast.distributed import EnvActor

    pool, learner = env_probes["pool"], env_probes["learner"]
    with one_thread():
        actor = EnvActor(0, 1, pool.env_fn, 0.0, net_fn=pool.net_fn, seed=0, rounds_per_chunk=3,
                         frame_shape=pool.frame_shape, stack=pool.stack)
        shapes = []
        actor.net.register_forward_hook(lambda module, args, out: shapes.append(tuple(args[0].shape)))
        weights = {k: v.detach().numpy().copy() for k, v in learner.q_network.state_dict().items()}
        actor.collect(weights, 1)
        actor.env.close()
    assert shapes and set(shapes) == {(1, 2, 40, 40)}
