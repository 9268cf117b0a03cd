"""Behaviour tests for the trainer's parts (actor, learner loop, checkpoints, CLI) and for evaluation.

Each test checks what a part does against an independent, simpler computation, so that plausible
wiring bugs fail here: a DRQN state not reset at an episode start, vector envs all given one seed,
evaluation stopping at the first lost life, a resume that does not restore the RNG states, a
trainer whose games differ from a plain DQN loop's, an option spelling that stopped parsing.
"""
from __future__ import annotations

import csv
import dataclasses
import random
import typing

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gym = pytest.importorskip("gymnasium")

from support.frames import decode  # noqa: E402
from support.pixel_env import PixelEnv  # noqa: E402
from support.tiny_config import tiny  # noqa: E402

from dqnfast import ReplayBuffer  # noqa: E402
from dqnfast import checkpoint as ckpt  # noqa: E402
from dqnfast.config import TrainConfig, preset  # noqa: E402
from dqnfast.learner import linear_schedule  # noqa: E402
from dqnfast.recurrent import DRQNLearner, RecurrentPolicy, build_learner  # noqa: E402
from dqnfast.train.actor import Actor  # noqa: E402
from dqnfast.train.schedule import epsilon_at, updates_due  # noqa: E402

SHAPE = (36, 36)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def needs_atari():
    pytest.importorskip("ale_py")


# -- the actor ------------------------------------------------------------------------------------------
def _episode_step(frame: np.ndarray) -> int:
    return decode(frame)[2]  # PixelEnv frames encode (env, episode, step)


@pytest.mark.parametrize("num_envs", [1, 3])
def test_the_actor_resets_each_envs_lstm_state_at_every_episode_start(num_envs):
    """The state a DRQN acts with is, for every env at every step, the LSTM unrolled from zeros over
    that env's frames since its episode began (recomputed here from the frames alone)."""
    def make(i):
        return PixelEnv(i, frame_shape=SHAPE, max_steps=5, p_terminate=0.2, seed=i)

    env = make(0) if num_envs == 1 else gym.vector.SyncVectorEnv([lambda i=i: make(i) for i in range(num_envs)])
    learner = DRQNLearner(3, frame_shape=SHAPE, hidden=16, device="cpu", seed=0)
    seen = []  # (frames fed, state passed in) of each act call
    act = learner.act

    def spy(frames, epsilon, state=None):
        seen.append((frames.copy(), None if state is None else (state[0].clone(), state[1].clone())))
        return act(frames, epsilon, state)

    learner.act = spy
    rb = ReplayBuffer(500, frame_shape=SHAPE, stack=1, num_envs=num_envs, seed=0)
    actor = Actor(env, rb, RecurrentPolicy(learner), num_envs)
    actor.reset(seed=0)
    for _ in range(40):
        actor.step(0.5)

    starts = 0
    history = [[] for _ in range(num_envs)]  # this episode's frames so far, per env
    for frames, state in seen:
        for i in range(num_envs):
            frame = frames[i]
            if _episode_step(frame) == 0:
                history[i] = []
                starts += 1
            h = torch.zeros(16) if state is None else state[0][i]
            if history[i]:
                with torch.no_grad():
                    _, (ref_h, _) = learner.q_network(torch.from_numpy(np.stack(history[i]))[None], None)
                expected = ref_h[0]
            else:
                expected = torch.zeros(16)
            assert torch.allclose(h, expected, atol=1e-5), (i, _episode_step(frame))
            history[i].append(frame)
    assert starts > 3 * num_envs  # many episode starts were checked


class SeedShowingEnv(gym.Env):
    """Frames drawn from the env's seeded generator: a game shows the seed it was given."""

    metadata = {"render_modes": []}
    observation_space = gym.spaces.Box(0, 255, SHAPE, np.uint8)
    action_space = gym.spaces.Discrete(3)

    def _frame(self):
        return self.np_random.integers(0, 256, SHAPE, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._frame(), {}

    def step(self, action):
        return self._frame(), 0.0, False, False, {}


def test_the_actor_seeds_env_i_of_a_vector_env_with_seed_plus_i():
    """Env i plays the game a single env seeded seed + i plays (not all envs one game)."""
    n, seed = 3, 11
    venv = gym.vector.SyncVectorEnv([SeedShowingEnv for _ in range(n)])
    rb = ReplayBuffer(200, frame_shape=SHAPE, stack=1, num_envs=n, seed=0)
    actor = Actor(venv, rb, lambda states, eps: np.zeros(n, np.int64), n)
    actor.reset(seed)
    seen = [[rb.stacked(i)[-1].copy()] for i in range(n)]
    for _ in range(3):
        actor.step(1.0)
        for i in range(n):
            seen[i].append(rb.stacked(i)[-1].copy())
    for i in range(n):
        single = SeedShowingEnv()
        expected = [single.reset(seed=seed + i)[0]] + [single.step(0)[0] for _ in range(3)]
        assert all(np.array_equal(a, b) for a, b in zip(seen[i], expected)), i


def test_the_trainers_vector_env_seeds_are_seed_plus_i(tmp_path):
    needs_atari()
    from dqnfast.train import Trainer
    trainer = Trainer(tiny(tmp_path, num_envs=3, seed=5, total_steps=30), "demo")
    try:
        assert [e.unwrapped.np_random_seed for e in trainer.env.envs] == [5, 6, 7]
    finally:
        trainer.env.close()
        trainer.log.close()


# -- schedules and acting ---------------------------------------------------------------------------------
def test_one_epsilon_schedule():
    cfg = preset("demo")
    for step in (0, 4_999, 5_000, 12_345, 25_000, 90_000):
        want = 1.0 if step < cfg.learning_starts else \
            cfg.start_epsilon + (cfg.end_epsilon - cfg.start_epsilon) * min(1.0, step / cfg.exploration_steps)
        assert epsilon_at(cfg, step) == want
    assert linear_schedule(1.0, 0.1, 0, 5) == pytest.approx(0.1)
    assert updates_due(cfg, cfg.learning_starts + 4 * 7 + 3) == 7


def dopamine_epsilon(decay_period: int, step: int, warmup_steps: int, epsilon: float) -> float:
    """Dopamine's linearly_decaying_epsilon (dopamine/jax/agents/dqn/dqn_agent.py), written out here:
    1 for ``warmup_steps`` steps, then linear to ``epsilon`` over the ``decay_period`` after them."""
    steps_left = decay_period + warmup_steps - step
    bonus = (1.0 - epsilon) * steps_left / decay_period
    return epsilon + min(max(bonus, 0.0), 1.0 - epsilon)


def test_exploration_after_warmup_is_dopamines_schedule():
    """With exploration_after_warmup, ε is DrQ(ε)'s (warm-up 1,600, decay 5,000, ε_train 0.01) at
    every step; without it, the decay counts from step 0 and ε drops at the warm-up's end."""
    cfg = preset("atari100k", exploration_after_warmup=True)
    assert (cfg.learning_starts, cfg.exploration_steps, cfg.end_epsilon) == (1_600, 5_000, 0.01)
    for step in (0, 1_599, 1_600, 1_601, 3_000, 6_599, 6_600, 6_601, 50_000):
        assert epsilon_at(cfg, step) == pytest.approx(dopamine_epsilon(5_000, step, 1_600, 0.01), abs=1e-12), step
    from_zero = cfg.replace(exploration_after_warmup=False)
    assert epsilon_at(from_zero, 1_600) == pytest.approx(1 - 0.99 * 1_600 / 5_000)
    assert epsilon_at(from_zero, 5_000) == pytest.approx(0.01)


# -- the learner, built from a config: gradient clipping ----------------------------------------------------
# (tests/learner/test_learner.py checks the clipped step against a hand-computed one)


# -- checkpoints and resume ----------------------------------------------------------------------------------
def test_resume_restores_every_rng_state(tmp_path):
    needs_atari()
    from dqnfast.train import Trainer
    cfg = tiny(tmp_path, total_steps=160)
    first = Trainer(cfg, "demo")
    first.run()
    random.random()
    torch.rand(7)  # the global generators moved on after the trainer seeded them ...
    first.save_checkpoint()  # ... and the checkpoint holds where they are now
    state = ckpt.load_training_checkpoint(first.checkpoints.path)
    fresh_learner_rng = np.random.default_rng(cfg.seed).bit_generator.state
    assert state["learner"]["rng"] != fresh_learner_rng  # epsilon-greedy drew from it

    random.seed(123)
    torch.manual_seed(123)
    resumed = Trainer(TrainConfig.from_dict(state["config"]).replace(total_steps=200), "demo", state,
                      run_dir=first.run_dir)
    try:
        assert random.getstate() == state["rng"]["python"]
        assert torch.equal(torch.get_rng_state(), state["rng"]["torch"])
        assert resumed.learner.rng.bit_generator.state == state["learner"]["rng"]
        assert resumed.replay_restored
    finally:
        resumed.env.close()
        resumed.log.close()


def test_checkpoint_retention_keeps_only_the_named_snapshot(tmp_path):
    needs_atari()
    from dqnfast.train import Trainer
    trainer = Trainer(tiny(tmp_path, total_steps=300, checkpoint_interval=100), "demo")
    trainer.run()
    run = tmp_path / "run"
    state = ckpt.load_training_checkpoint(str(run / "checkpoint.pt"))
    assert state["replay"] == "replay-300.bin"
    assert sorted(p.name for p in run.glob("replay-*.bin")) == ["replay-300.bin"]
    assert ReplayBuffer.load(str(run / "replay-300.bin")).writes == trainer.rb.writes


# -- the synchronous trainer plays the games a plain DQN loop plays ----------------------------------------
def plain_dqn_loop(cfg: TrainConfig):
    """The DQN loop written out flat (as in a textbook), from the same seeds: the reference the
    trainer's actor, learner loop and schedules must reproduce game for game."""
    from dqnfast.envs import make_env
    env = make_env(cfg, num_envs=1, seed=cfg.seed)
    learner = build_learner(cfg, int(env.action_space.n), device="cpu", seed=cfg.seed)
    rb = ReplayBuffer(cfg.buffer_size, frame_shape=(cfg.frame_size,) * 2, stack=cfg.stack, seed=cfg.seed,
                      n_step=cfg.n_step, gamma=cfg.gamma)
    obs, _ = env.reset(seed=cfg.seed)
    rb.start_episode(obs)
    games = []
    for step in range(cfg.total_steps):
        if step < cfg.learning_starts:
            epsilon = 1.0
        else:
            epsilon = cfg.start_epsilon + (cfg.end_epsilon - cfg.start_epsilon) * min(1.0, step / cfg.exploration_steps)
        action = learner.act(rb.stacked(), epsilon)
        obs, reward, terminated, truncated, info = env.step(action)
        rb.add(action, reward, obs, terminated, truncated)
        if terminated or truncated:
            obs, _ = env.reset()
            rb.start_episode(obs)
        if "episode" in info:
            games.append((step + 1, float(info["episode"]["r"]), int(info["episode"]["l"])))
        while learner.updates < (step + 1 - cfg.learning_starts) // cfg.train_frequency:
            learner.update(rb.sample(cfg.batch_size))
    env.close()
    return games, learner


@pytest.mark.slow
@pytest.mark.parametrize("n_step", [1, 3])
def test_sync_trainer_plays_the_games_of_a_plain_dqn_loop(tmp_path, n_step):
    needs_atari()
    from dqnfast.train import Trainer
    cfg = tiny(tmp_path, total_steps=700, n_step=n_step, exploration_steps=300, end_epsilon=0.2)
    trainer = Trainer(cfg, "demo")
    summary = trainer.run()
    with open(tmp_path / "run" / "episodes.csv") as f:
        games = [(int(r["global_step"]), float(r["return"]), int(r["length"])) for r in csv.DictReader(f)]
    expected, learner = plain_dqn_loop(cfg)
    assert len(expected) >= 2 and summary["updates"] == learner.updates
    assert games == expected
    for name, p in learner.q_network.state_dict().items():
        assert torch.equal(trainer.learner.q_network.state_dict()[name], p), name


# -- evaluation --------------------------------------------------------------------------------------------
def test_evaluation_plays_every_life_of_each_game(monkeypatch):
    """A score is a whole game's: the evaluation env must not end an episode at a lost life, even
    though the agent was trained with episodic_life."""
    needs_atari()
    from dqnfast import evaluate
    cfg = preset("demo", frame_size=36, crop=None, noop_max=5)
    assert cfg.episodic_life and cfg.clip_rewards
    games = []
    make_env = evaluate.make_env

    class Recorder(gym.Wrapper):
        def reset(self, **kw):
            games.append({"rewards": 0.0, "lives_at_end": None})
            return self.env.reset(**kw)

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            games[-1]["rewards"] += reward
            if terminated or truncated:
                games[-1]["lives_at_end"] = self.env.unwrapped.ale.lives()
            return obs, reward, terminated, truncated, info

    monkeypatch.setattr(evaluate, "make_env", lambda *a, **kw: Recorder(make_env(*a, **kw)))
    learner = build_learner(cfg, 4, device="cpu", seed=0)
    returns = evaluate.evaluate_learner(learner, cfg, episodes=2, epsilon=1.0, seed=5, max_steps=20_000)
    assert len(games) == 2
    for game, score in zip(games, returns):
        assert game["lives_at_end"] == 0  # game over, not the first lost life
        assert score == game["rewards"]  # unclipped, every life


# -- the command line ---------------------------------------------------------------------------------------
def _parse(*argv):
    from dqnfast.train import parse_config
    return parse_config(list(argv))


SPELLINGS = [  # every option spelling `dqnfast train` accepted before it moved to tyro
    (["--preset", "nature"], {}, "nature"),
    (["--preset=nature"], {}, "nature"),
    (["--env-id", "ALE/Pong-v5"], {"env_id": "ALE/Pong-v5"}, "demo"),
    (["--crop", "1,2,3,4"], {"crop": (1, 2, 3, 4)}, "demo"),
    (["--crop", "10, 200, 0, 160"], {"crop": (10, 200, 0, 160)}, "demo"),
    (["--crop", "none"], {"crop": None}, "demo"),
    (["--crop", "OFF"], {"crop": None}, "demo"),
    (["--max-grad-norm", "none"], {"max_grad_norm": None}, "demo"),
    (["--max-grad-norm", "Off"], {"max_grad_norm": None}, "demo"),
    (["--max-grad-norm", "0.5"], {"max_grad_norm": 0.5}, "demo"),
    (["--interp", "nearest"], {"interp": "nearest"}, "demo"),
    (["--optimizer", "rmsprop", "--loss", "mse"], {"optimizer": "rmsprop", "loss": "mse"}, "demo"),
    (["--total-steps=123"], {"total_steps": 123}, "demo"),
    (["--recurrent"], {"recurrent": True, "n_step": 1}, "demo"),  # the preset's n-step returns switched off
    (["--recurrent", "--n-step", "1", "--burn-in", "2"], {"recurrent": True, "n_step": 1, "burn_in": 2}, "demo"),
]


HINTS = typing.get_type_hints(TrainConfig)


def _field_value(f: dataclasses.Field):
    """An accepted non-default value for each field, as text and as the parsed value."""
    if f.name == "env_id":
        return "ALE/Pong-v5", "ALE/Pong-v5"
    choices = {"interp": ("nearest", "nearest"), "optimizer": ("rmsprop", "rmsprop"), "loss": ("mse", "mse"),
               "device": ("cpu", "cpu"), "crop": ("0,100,0,100", (0, 100, 0, 100)),
               "max_grad_norm": ("2.5", 2.5), "run_dir": ("elsewhere", "elsewhere"),
               "run_name": ("named", "named"), "gray": ("mean", "mean"), "update_mode": ("compile", "compile"),
               "replay_device": ("cuda", "cuda"), "ray": ("auto", "auto"), "reset_layers": ("all", "all"),
               "intensity": ("0.05", 0.05), "network": ("dopamine", "dopamine")}
    if f.name in choices:
        return choices[f.name]
    if HINTS[f.name] is float:
        return "0.5", 0.5
    return {"frame_size": ("40", 40), "buffer_size": ("5000", 5000), "burn_in": ("0", 0), "env_workers": ("1", 1),
            "sequence_length": ("6", 6)}.get(f.name, ("3", 3))


@pytest.mark.parametrize("f", dataclasses.fields(TrainConfig), ids=lambda f: f.name)
def test_every_config_option_keeps_its_spelling(f):
    needs_atari()
    flag = "--" + f.name.replace("_", "-")
    if HINTS[f.name] is bool:
        for argv, value in (([flag], True), (["--no-" + flag[2:]], False)):
            cfg, *_ = _parse(*argv, *(["--no-recurrent"] if f.name == "async_actor" else []))
            assert getattr(cfg, f.name) is value
        return
    text, value = _field_value(f)
    cfg, *_ = _parse(flag, text)
    assert getattr(cfg, f.name) == value


@pytest.mark.parametrize("argv, expected, preset_name", SPELLINGS)
def test_option_spellings(argv, expected, preset_name):
    needs_atari()
    cfg, name, resume, state = _parse(*argv)
    assert name == preset_name and resume is None and state is None
    base = preset(preset_name)
    for field, value in expected.items():
        assert getattr(cfg, field) == value, field
    untouched = {f.name for f in dataclasses.fields(TrainConfig)} - set(expected)
    assert {k: getattr(cfg, k) for k in untouched} == {k: getattr(base, k) for k in untouched}


def test_tensorboard_and_async_flags_from_before_still_work():
    needs_atari()
    cfg, *_ = _parse("--no-tensorboard", "--async-actor", "--no-progress", "--no-save-replay", "--double-dqn")
    assert (cfg.tensorboard, cfg.async_actor, cfg.progress, cfg.save_replay, cfg.double_dqn) == (False, True, False,
                                                                                              False, True)
