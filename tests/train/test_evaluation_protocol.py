"""The evaluation protocol as a user sees it, checked against a record kept outside the code under test.

A spying wrapper around the evaluation env records every action the game received, the lives
before and after it and the frame it returned; a constant network records every state it was shown.
From those alone the tests check: FIRE only where the protocol presses it (right after a lost life;
the game start's FIRE is the env's reset), a fresh frame stack at the start of each life, and the
exploration rate actually played, by `dqnfast evaluate` and by the trainer's final evaluation, is
the run's ``eval_epsilon`` (0.05), not 0.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gym = pytest.importorskip("gymnasium")
pytest.importorskip("ale_py")

from dqnfast import config, evaluate  # noqa: E402
from dqnfast.config import preset  # noqa: E402
from dqnfast.recurrent import build_learner  # noqa: E402
from support.evaluation_spies import (FIRE, LEFT, ConstantQ, Spy, assert_epsilon_played, constant_left_checkpoint,  # noqa: E402
                                      lost_a_life, non_greedy, relaunches, spy_on_evaluation_env)
from support.tiny_config import tiny  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield



def cfg_36(**changes):
    return preset("demo", frame_size=36, crop=None, noop_max=5, **changes)


def play(monkeypatch, epsilon, episodes=2, max_steps=20_000):
    """(games as spied, states the network saw, scores): ``episodes`` games of a constant-LEFT agent."""
    cfg = cfg_36()
    assert cfg.episodic_life and cfg.fire_reset and cfg.replay_stack == 4
    games: List[Dict[str, Any]] = []
    spy_on_evaluation_env(monkeypatch, games)
    learner = build_learner(cfg, 4, device="cpu", seed=0)
    learner.q_network = ConstantQ()
    scores = evaluate.evaluate_learner(learner, cfg, episodes=episodes, epsilon=epsilon, seed=3, max_steps=max_steps)
    return games, learner.q_network.seen, scores


def test_evaluation_presses_fire_only_right_after_each_lost_life(monkeypatch):
    """Greedy play (epsilon 0) of an agent that never picks FIRE: every FIRE the game receives is
    the protocol's, and it comes exactly once after each lost life (the game start's FIRE is the
    env's reset). A life count not kept up to date presses FIRE at other steps too."""
    games, _, _ = play(monkeypatch, epsilon=0.0)
    assert len(games) == 2
    for game in games:
        steps = game["steps"]
        assert steps[-1][2] == 0  # the whole game: all five lives lost, so lives 2..5 were relaunched
        assert sum(lost_a_life(s) for s in steps) == 5
        fired = [k for k, s in enumerate(steps) if s[0] == FIRE]
        assert fired == relaunches(steps), f"FIRE at steps {fired}, lives lost before steps {relaunches(steps)}"
        assert all(s[0] == LEFT for k, s in enumerate(steps) if k not in fired)


def test_each_life_starts_with_a_fresh_frame_stack(monkeypatch):
    """The state the network sees in each step, from the spied frames alone: the last four frames
    of the current life, zero-padded at a life's start. A life starts at the game's reset and
    with the frame after the FIRE that follows a lost life (as the training env's reset after a
    lost life starts a new episode); the FIRE step itself still sees the old life's frames."""
    games, seen, _ = play(monkeypatch, epsilon=0.0, episodes=1)
    steps = games[0]["steps"]
    assert len(seen) == len(steps)  # one forward pass per step
    fire_steps = set(relaunches(steps))
    assert len(fire_steps) == 4
    life = [games[0]["reset"]]
    zero = np.zeros_like(life[0])
    fresh_checked = 0
    for k, (action, _, _, frame) in enumerate(steps):
        if k - 1 in fire_steps:  # the first state of a new life: its first frame and padding
            assert not seen[k][:3].any() and np.array_equal(seen[k][3], steps[k - 1][3]), \
                f"step {k}: the first state after the FIRE that follows a lost life is not a fresh stack"
            fresh_checked += 1
        expected = np.stack(([zero] * 4 + life)[-4:])
        assert np.array_equal(seen[k], expected), f"step {k}: not the stack of this life's last frames"
        life = [frame] if k in fire_steps else life + [frame]
    assert fresh_checked == 4



@pytest.mark.slow
def test_dqnfast_evaluate_plays_the_runs_eval_epsilon_by_default(tmp_path, monkeypatch, capsys):
    cfg = cfg_36()
    assert cfg.eval_epsilon == 0.05
    path = tmp_path / "checkpoint.pt"
    constant_left_checkpoint(path, cfg)
    games: List[Dict[str, Any]] = []
    spy_on_evaluation_env(monkeypatch, games)
    assert evaluate.main([str(path), "--episodes", "4", "--max-steps", "1000", "--device", "cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epsilon"] == 0.05
    assert_epsilon_played(*non_greedy(games), epsilon=0.05, min_steps=600)


@pytest.mark.slow
def test_dqnfast_evaluate_plays_parallel_games_side_by_side_with_the_same_scores(tmp_path, monkeypatch, capsys):
    """`--parallel N` plays N games side by side (N evaluation envs built, counted by the spy), each
    game the one it is when played alone: the spied games (sorted: side by side they end in another
    order) took the same actions and the scores agree. `--parallel 0` is refused before anything is played."""
    path = tmp_path / "checkpoint.pt"
    constant_left_checkpoint(path, cfg_36())
    played = {}
    for parallel in (1, 3):
        games: List[Dict[str, Any]] = []
        built: List[Dict[str, Any]] = []
        with monkeypatch.context() as patch:  # each round spies on the real make_env
            spy_on_evaluation_env(patch, games)
            spied = evaluate.make_env
            patch.setattr(evaluate, "make_env", lambda *a, **kw: built.append(kw) or spied(*a, **kw))
            assert evaluate.main([str(path), "--episodes", "3", "--epsilon", "0.5", "--max-steps", "150",
                                  "--parallel", str(parallel), "--device", "cpu", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert sum(bool(kw.get("evaluation")) for kw in built) == parallel
        actions = sorted(([s[0] for s in g["steps"]] for g in games))
        played[parallel] = (out["returns"], actions)
    assert played[1] == played[3]
    assert len({tuple(a) for a in played[1][1]}) == 3  # three different games (epsilon 0.5)
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(path), "--parallel", "0"])
    assert exit_info.value.code == 2
    assert "--parallel must be positive" in capsys.readouterr().err


@pytest.mark.parametrize("frame_skip", [2, 4])
def test_a_games_default_cap_is_the_frame_cap_at_the_runs_frame_skip(monkeypatch, frame_skip):
    """Without ``max_steps`` a game is cut off after GAME_FRAME_CAP frames (108k, 30 minutes of
    play), counted in agent steps at the run's frame skip. The cap is made small here so that a
    constant-LEFT agent, which loses its lives far later, is cut off by it: the spied env counts
    the steps each game received, and 240 frames are 120 steps at skip 2 and 60 at skip 4."""
    monkeypatch.setattr(config, "GAME_FRAME_CAP", 240)  # what TrainConfig.game_step_cap reads
    cfg = cfg_36(frame_skip=frame_skip)
    games: List[Dict[str, Any]] = []
    spy_on_evaluation_env(monkeypatch, games)
    learner = build_learner(cfg, 4, device="cpu", seed=0)
    learner.q_network = ConstantQ()
    evaluate.evaluate_learner(learner, cfg, episodes=2, epsilon=0.0, seed=3)
    assert [len(g["steps"]) for g in games] == [240 // frame_skip] * 2
    assert all(g["steps"][-1][2] > 0 for g in games)  # lives left: the cap ended the game, not the game


@pytest.mark.slow
def test_the_trainers_final_evaluation_plays_eval_epsilon(tmp_path, monkeypatch):
    """The trainer's own evaluation at the end of a (tiny) run. Its network is whatever 120 steps
    made of it, so each step's greedy action is read off the network's output (a forward hook set
    when the evaluation env is built, i.e. after training); the action taken, from the spied env."""
    from dqnfast.train import Trainer
    cfg = tiny(tmp_path, total_steps=120, eval_episodes=4)  # tests/support/tiny_config.py
    assert cfg.eval_epsilon == 0.05
    trainer = Trainer(cfg, "demo")
    games: List[Dict[str, Any]] = []
    greedy: List[int] = []
    make_env = evaluate.make_env

    def spied(*args, **kw):
        if kw.get("evaluation"):
            trainer.learner.q_network.register_forward_hook(
                lambda module, inputs, q: greedy.extend(q.argmax(dim=1).tolist()))
            return Spy(make_env(*args, **kw), games)
        return make_env(*args, **kw)

    monkeypatch.setattr(evaluate, "make_env", spied)
    summary = trainer.run()
    assert len(games) == 4 and len(summary["eval_returns"]) == 4
    assert len(greedy) == sum(len(g["steps"]) for g in games)  # one forward pass per evaluation step
    assert_epsilon_played(*non_greedy(games, lambda k: greedy[k]), epsilon=0.05, min_steps=600)


@pytest.mark.slow
def test_a_games_score_does_not_depend_on_the_games_played_beside_it():
    """Game g is seeded seed + g and draws its own epsilon-greedy choices, so playing the games one
    at a time or several side by side (one batched forward pass) gives the same scores, in game order."""
    class StateQ(torch.nn.Module):
        """A greedy action that changes with the state (its pixel sum mod 4): games on other states
        are played with other actions, so a row mixed up between games changes the game."""

        def forward(self, x):
            return torch.nn.functional.one_hot(x.reshape(x.shape[0], -1).long().sum(1) % 4, 4).float()

    cfg = cfg_36()
    learner = build_learner(cfg, 4, device="cpu", seed=0)
    learner.q_network = StateQ()
    one = evaluate.evaluate_learner(learner, cfg, episodes=5, epsilon=0.3, seed=7, max_steps=400)
    three = evaluate.evaluate_learner(learner, cfg, episodes=5, epsilon=0.3, seed=7, max_steps=400, parallel=3)
    assert one == three
    assert len(set(one)) > 1  # the games differ: a mix-up of games would show


@pytest.mark.parametrize("kwargs, message", [
    ({"episodes": 0}, "episodes must be positive"),
    ({"epsilon": 1.5}, r"epsilon must be in \[0, 1\]"),
    ({"parallel": 0}, "parallel must be positive"),
    ({"max_steps": 0}, "max_steps must be positive"),
])
def test_evaluate_learner_refuses_bad_arguments_before_playing(monkeypatch, kwargs, message):
    """Refused before any env is made (a spied env would record the games otherwise)."""
    games: List[Dict[str, Any]] = []
    spy_on_evaluation_env(monkeypatch, games)
    cfg = cfg_36()
    learner = build_learner(cfg, 4, device="cpu", seed=0)
    args = {"episodes": 1, "epsilon": 0.0, "seed": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        evaluate.evaluate_learner(learner, cfg, **args)
    assert games == []
