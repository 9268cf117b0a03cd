"""Trainer options for sample-efficient learning (issue 18): each pinned by what the run did, read
from records kept outside the trainer (an optimizer hook, a wrapper around the env, the batches
the update was handed), so a test fails if its option is silently ignored."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")
pytest.importorskip("ale_py")

from dqnfast.config import TrainConfig, preset  # noqa: E402
from dqnfast.replay_reference import shift_state  # noqa: E402
from dqnfast.train import Trainer  # noqa: E402
from support.tiny_config import quick  # noqa: E402


pytestmark = pytest.mark.slow  # trainer runs


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def tiny(tmp_path, **changes) -> TrainConfig:
    """The quick tiny config (tests/support/tiny_config.py)."""
    return quick(tmp_path, **changes)


class StepCounter:
    """Counts the env steps the trainer's actor really takes (the env's own calls, not the trainer's count)."""

    def __init__(self, trainer: Trainer) -> None:
        env = trainer.actor.env
        self.steps = 0
        inner = env.step

        def step(action):
            self.steps += 1
            return inner(action)

        env.step = step


def count_optimizer_steps(trainer: Trainer):
    """The number of optimizer steps taken, from a hook on the optimizer itself."""
    taken = [0]
    trainer.learner.optimizer.register_step_post_hook(lambda *_: taken.__setitem__(0, taken[0] + 1))
    return taken


@pytest.mark.parametrize("ratio, async_actor", [(0.25, False), (0.7, False), (2.0, False), (2.0, True)])
def test_replay_ratio_sets_the_exact_number_of_updates(tmp_path, ratio, async_actor):
    cfg = tiny(tmp_path, total_steps=150, replay_ratio=ratio, async_actor=async_actor)
    trainer = Trainer(cfg, "demo")
    env_steps, updates = StepCounter(trainer), count_optimizer_steps(trainer)
    trainer.run()
    # the ratio as the decimal it was written as: floor(0.7 * 90) is 63, where the float product
    # (62.99999...) would give 62
    expected = math.floor(Fraction(str(ratio)) * (env_steps.steps - cfg.learning_starts))
    assert env_steps.steps == cfg.total_steps
    assert updates[0] == expected, f"{updates[0]} optimizer steps for {env_steps.steps} env steps at ratio {ratio}"


def test_replay_ratio_none_keeps_train_frequency(tmp_path):
    cfg = tiny(tmp_path, total_steps=140, train_frequency=8)
    trainer = Trainer(cfg, "demo")
    env_steps, updates = StepCounter(trainer), count_optimizer_steps(trainer)
    trainer.run()
    assert updates[0] == (env_steps.steps - cfg.learning_starts) // 8


def shifted_by(state: np.ndarray, stored: np.ndarray, pad: int):
    """The offsets (dy, dx) in [-pad, pad]^2 by which ``state`` is ``stored`` shifted (edges repeated)."""
    return [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)
            if np.array_equal(state, shift_state(stored, pad, dy, dx))]


@pytest.mark.parametrize("shift, n_step", [(0, 1), (4, 1), (4, 3)])
def test_shift_reaches_the_batches_the_learner_updates_on(tmp_path, shift, n_step):
    cfg = tiny(tmp_path, total_steps=120, shift=shift, n_step=n_step, replay_ratio=0.5)
    trainer = Trainer(cfg, "demo")
    rb, seen = trainer.rb, []
    update = trainer.learning.update

    def spy(batch, metrics=True):  # what the learner is handed, against the replay's own copy of it
        stored = rb.gather(batch.index.copy())
        seen.append((batch.obs.copy(), batch.next_obs.copy(), stored.obs, stored.next_obs))
        return update(batch, metrics)

    trainer.learning.update = spy
    trainer.run()
    assert len(seen) == 30
    moved = 0
    for obs, next_obs, stored_obs, stored_next in seen:
        for r in range(len(obs)):
            if shift == 0:
                np.testing.assert_array_equal(obs[r], stored_obs[r])
                continue
            offsets = shifted_by(obs[r], stored_obs[r], shift)
            assert offsets, "a sampled state is not the stored state shifted by at most `shift` pixels"
            assert shifted_by(next_obs[r], stored_next[r], shift)
            moved += not np.array_equal(obs[r], stored_obs[r])
    if shift:
        assert moved > len(seen) * cfg.batch_size // 2, f"only {moved} states were shifted"


@pytest.mark.parametrize("intensity, mode", [(0.0, "eager"), (0.1, "eager"), (0.1, "compile")])
def test_intensity_reaches_the_states_the_learner_updates_on(tmp_path, monkeypatch, intensity, mode):
    """Every state an update feeds the online network is the sampled state times one factor in
    [1 - 2 intensity, 1 + 2 intensity], a new one for each state; acting sees the frames as they
    are. Read from a hook on the network and the batches the update step is handed."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # the wiring, not inductor's code
    cfg = tiny(tmp_path, total_steps=120, replay_ratio=0.5, intensity=intensity, update_mode=mode)
    trainer = Trainer(cfg, "demo")
    handed, inputs = [], []
    update = trainer.learning.update

    def spy(batch, metrics=True):
        handed.append(batch.obs.copy())
        return update(batch, metrics)

    trainer.learning.update = spy
    trainer.learner.q_network.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach().clone()))
    trainer.run()
    assert len(handed) == 30
    # the update's pass on obs is the one whose rows match a handed batch's shape and content
    matched, all_factors = 0, []
    for x in inputs:
        if x.dtype == torch.uint8:  # acting (and every pass with the augmentation off)
            continue
        for obs in handed:
            if x.shape != obs.shape:
                continue
            per_row = (x.double().numpy() / np.maximum(obs, 1)).reshape(len(obs), -1)
            nonzero = obs.reshape(len(obs), -1) > 0
            if not all(np.ptp(r[n]) < 1e-6 for r, n in zip(per_row, nonzero)):
                continue
            matched += 1
            all_factors.extend(r[n][0] for r, n in zip(per_row, nonzero) if n.any())
            break
    if intensity == 0:
        assert matched == 0 and not any(x.dtype != torch.uint8 for x in inputs)
        return
    assert matched == len(handed)
    f = np.array(all_factors)
    assert f.min() >= 1 - 2 * intensity - 1e-6 and f.max() <= 1 + 2 * intensity + 1e-6
    assert len(np.unique(f.round(6))) > len(f) * 0.9  # a draw per state


@pytest.mark.parametrize("changes, message", [
    (dict(intensity=-0.1), "intensity must be in [0, 0.5)"),
    (dict(intensity=0.5), "intensity must be in [0, 0.5)"),
    (dict(intensity=0.05, recurrent=True), "intensity augments the DQN update"),
    (dict(intensity=0.05, update_mode="graph"), "intensity augments the DQN update"),
    (dict(replay_ratio=0.0), "replay_ratio must be in (0, 64]"),
    (dict(replay_ratio=-1.0), "replay_ratio must be in (0, 64]"),
    (dict(replay_ratio=float("nan")), "replay_ratio must be in (0, 64]"),
    (dict(shift=36), "shift must be in [0, frame_size=36)"),
    (dict(shift=-1), "shift must be in [0, frame_size=36)"),
    (dict(shift=2, recurrent=True), "shift augments sampled transitions"),
    (dict(priority_alpha=1.5), "priority_alpha must be in [0, 1]"),
    (dict(priority_eps=0.0), "priority_eps must be positive"),
    (dict(prioritized=True, update_mode="graph"), "prioritized samples from the host"),
    (dict(dueling=True, recurrent=True), "dueling is a head"),
    (dict(network="dopamine", recurrent=True), "network 'dopamine' is a feed-forward Q-network"),
    (dict(network="impala"), "network must be one of"),
    (dict(reset_shrink=1.5), "reset_shrink must be in [0, 1]"),
    (dict(reset_interval=-1), "reset_interval must be non-negative"),
    (dict(reset_interval=100, update_mode="graph"), "reset_interval resets the DQN learner's layers"),
])
def test_bad_values_are_refused_before_any_work(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        tiny(tmp_path, **changes).validate()


def test_dueling_head_has_zero_mean_advantages_and_reaches_the_trained_network(tmp_path):
    from dqnfast import checkpoint as ckpt
    from dqnfast.recurrent import build_learner

    cfg = tiny(tmp_path, total_steps=90, dueling=True)
    trainer = Trainer(cfg, "demo")
    summary = trainer.run()
    net = trainer.learner.q_network
    x = torch.randint(0, 256, (5, cfg.stack, 36, 36), dtype=torch.uint8)
    with torch.no_grad():
        features = net.network(x / 255.0)
        value, advantage = net.value(features), net.advantage(features)
        q = net(x)
    assert value.shape == (5, 1) and advantage.shape == (5, trainer.num_actions)
    # Q - V is the advantage centred over actions: zero mean over actions, same ranking as A
    torch.testing.assert_close(q - value, advantage - advantage.mean(dim=1, keepdim=True))
    torch.testing.assert_close((q - value).mean(dim=1), torch.zeros(5), atol=1e-6, rtol=0)
    # the checkpoint holds the dueling weights, and the learner built from it (dqnfast evaluate's) uses them
    state = ckpt.load_training_checkpoint(summary["checkpoint"])
    assert any(k.startswith("value.") for k in state["learner"]["q_network"])
    again = build_learner(TrainConfig.from_dict(state["config"]), trainer.num_actions, device="cpu")
    again.load_state_dict(state["learner"])
    with torch.no_grad():
        torch.testing.assert_close(again.q_network(x), q)


def test_network_dopamine_is_the_network_trained_checkpointed_and_acted_with(tmp_path, capsys):
    """``--network dopamine``: the learner trains Dopamine's network (its 'SAME' padding gives a
    36x36 frame 5x5 conv features, the Nature CNN 1x1), the checkpoint holds it, the learner
    ``dqnfast evaluate`` builds from the checkpoint's config plays with it, a Ray actor would build
    it (the weights the learner sends load into it), and a resume cannot switch networks."""
    from dqnfast import checkpoint as ckpt
    from dqnfast import train
    from dqnfast.dopamine_network import DopamineQNetwork
    from dqnfast.recurrent import build_learner
    from dqnfast.train.ray_loop import actor_network_fn

    cfg = tiny(tmp_path, total_steps=90, dueling=True, network="dopamine")
    trainer = Trainer(cfg, "demo")
    summary = trainer.run()
    net = trainer.learner.q_network
    assert isinstance(net, DopamineQNetwork) and net.network[10].in_features == 64 * 5 * 5
    x = torch.randint(0, 256, (5, cfg.stack, 36, 36), dtype=torch.uint8)
    with torch.no_grad():
        q = net(x)
    state = ckpt.load_training_checkpoint(summary["checkpoint"])
    again = build_learner(TrainConfig.from_dict(state["config"]), trainer.num_actions, device="cpu")
    again.load_state_dict(state["learner"])
    with torch.no_grad():
        torch.testing.assert_close(again.q_network(x), q)
    actor_net = actor_network_fn(cfg, trainer.num_actions)()
    actor_net.load_state_dict(net.state_dict())  # strict: the same layers, the same shapes
    with torch.no_grad():
        torch.testing.assert_close(actor_net(x), q)
    assert train.main(["--resume", summary["checkpoint"], "--network", "nature", "--no-progress"]) == 2
    assert "network dopamine in the checkpoint, nature in the config" in capsys.readouterr().err


def test_without_dueling_the_network_is_the_nature_cnn(tmp_path):
    from dqnfast.recurrent import build_learner

    net = build_learner(tiny(tmp_path), 4, device="cpu").q_network
    assert not hasattr(net, "value") and net.network[-1].out_features == 4


# update_mode compile: torch.compile is replaced by the function itself in these trainer tests, so what
# they pin is that the compiled step the trainer builds is the one that weights the loss, returns the
# priorities and learns on after a reset (tests/learner/test_fast_update.py compiles it for real).
@pytest.mark.parametrize("mode", ["eager", "compile"])
def test_prioritized_training_weights_the_loss_and_sets_the_td_errors_as_priorities(tmp_path, monkeypatch, mode):
    from dqnfast import Batch, PrioritizedReplayBuffer
    from dqnfast.fast_update import CompiledUpdate

    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    cfg = tiny(tmp_path, total_steps=110, prioritized=True, priority_alpha=0.6, priority_beta=0.4, replay_ratio=0.5,
               double_dqn=True, n_step=3, update_mode=mode)
    trainer = Trainer(cfg, "demo")
    assert isinstance(trainer.learning.update, CompiledUpdate) == (mode == "compile")
    rb, learner = trainer.rb, trainer.learner
    assert isinstance(rb, PrioritizedReplayBuffer)
    betas, pending, checked = [], {}, []
    sample, update_priorities, step = rb.sample, rb.update_priorities, learner.optimizer_step

    def spy_sample(batch_size, beta=0.4, out=None, **kw):  # the buffer's records: what it was asked for
        b = sample(batch_size, beta, out=out, **kw)
        betas.append(beta)
        # the TD errors of this batch before the update, recomputed here from the networks
        with torch.no_grad():
            obs = torch.from_numpy(b.obs.copy())
            q = learner.q_network(obs).gather(1, torch.from_numpy(b.action).unsqueeze(1)).squeeze(1)
        target = torch.from_numpy(learner.targets(Batch(*b[:8])))
        pending.update(index=b.index.copy(), td=(target - q).abs().double().numpy(), weights=b.weights.copy(),
                       q=q, target=target)
        return b

    def spy_step(loss, q_mean, metrics=True):  # the loss the optimizer is handed
        huber = torch.nn.functional.smooth_l1_loss(pending["q"], pending["target"], reduction="none")
        expected = (torch.from_numpy(pending["weights"]) * huber).mean()
        torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
        return step(loss, q_mean, metrics)

    def spy_update(index, priorities):
        np.testing.assert_array_equal(index, pending["index"])
        np.testing.assert_allclose(priorities, pending["td"] + cfg.priority_eps, rtol=1e-5, atol=1e-6)
        checked.append(len(index))
        return update_priorities(index, priorities)

    rb.sample, rb.update_priorities, learner.optimizer_step = spy_sample, spy_update, spy_step
    if mode == "compile":  # the compiled step takes the prioritized batches, not the eager one
        learner.update_prioritized = lambda batch: pytest.fail("the eager prioritized update ran under compile")
    trainer.run()
    assert len(checked) == len(betas) == 25
    # beta anneals from priority_beta at the first update to 1 at the last
    assert betas[0] == pytest.approx(0.4) and betas[-1] == pytest.approx(1.0)
    assert all(b2 > b1 for b1, b2 in zip(betas, betas[1:]))


@pytest.mark.parametrize("mode", ["eager", "compile"])
@pytest.mark.parametrize("layers", ["head", "all"])
def test_a_reset_changes_exactly_the_named_layers_and_their_optimizer_state(tmp_path, monkeypatch, layers, mode):
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    cfg = tiny(tmp_path, total_steps=100, replay_ratio=0.5, reset_interval=7, reset_layers=layers, reset_shrink=0.25,
               update_mode=mode)
    trainer = Trainer(cfg, "demo")
    learner = trainer.learner
    net, target, opt = learner.q_network, learner.target_network, learner.optimizer
    names = {p: n for n, p in net.named_parameters()}
    after, before = {}, {}  # step k -> parameters right after optimizer step k / right before step k

    def snapshot(module):
        return {n: p.detach().clone() for n, p in module.named_parameters()}

    def pre(optimizer, args, kwargs):
        k = len(after) + 1
        before[k] = (snapshot(net), snapshot(target), {names[p] for p in optimizer.state})

    opt.register_step_pre_hook(pre)
    opt.register_step_post_hook(lambda *_: after.__setitem__(len(after) + 1, (snapshot(net), snapshot(target))))
    trainer.run()
    assert len(after) == 20
    for k in range(1, 20):  # between step k and step k + 1 only a reset may change the weights
        changed = {n for n, p in before[k + 1][0].items() if not torch.equal(p, after[k][0][n])}
        has_state = before[k + 1][2]
        if k % 7:
            assert not changed and len(has_state) == len(names)
            continue
        linear = {n for n in names.values() if n.startswith("network.") and int(n.split(".")[1]) >= 7}
        conv = set(names.values()) - linear
        assert changed == (linear | conv if layers == "all" else linear), f"reset at update {k} changed {changed}"
        assert has_state == set(names.values()) - changed, "the optimizer kept state of reset parameters"
        for n in changed:  # the target got the same reset: the same fresh weights, shrunk alike
            keep = 0.25 if n in conv else 0.0
            fresh_online = (before[k + 1][0][n] - keep * after[k][0][n]) / (1 - keep)
            fresh_target = (before[k + 1][1][n] - keep * after[k][1][n]) / (1 - keep)
            torch.testing.assert_close(fresh_online, fresh_target, rtol=1e-4, atol=1e-5)
            # a fresh PyTorch init of a layer with fan-in f lies within 1/sqrt(f)
            fan_in = after[k][0][n.replace("bias", "weight")][0].numel()
            assert fresh_online.abs().max() <= 1.0 / fan_in ** 0.5 + 1e-5


def test_an_ema_target_follows_the_online_network_with_ten_step_returns_and_the_rest(tmp_path):
    """The atari100k preset's combination (10-step returns, dueling, Double DQN, shift, an epsilon
    schedule of a few thousand steps) with an EMA target: after every update the target is
    (1 - tau) * target + tau * online, read from the networks around each optimizer step."""
    tau = 0.05
    cfg = preset("atari100k", frame_size=36, buffer_size=2000, batch_size=4, learning_starts=60, total_steps=90,
                 replay_ratio=0.5, exploration_steps=3000, tau=tau, target_update_interval=1, progress=False,
                 tensorboard=False, run_dir=str(tmp_path), run_name="run", checkpoint_interval=0, save_replay=False)
    trainer = Trainer(cfg, "atari100k")
    net, target, opt = trainer.learner.q_network, trainer.learner.target_network, trainer.learner.optimizer
    records = []

    def snap(module):
        return [p.detach().clone() for p in module.parameters()]

    opt.register_step_post_hook(lambda *_: records.append(("online", snap(net), snap(target))))
    opt.register_step_pre_hook(lambda *_: records.append(("before", None, snap(target))))
    trainer.run()
    records.append(("before", None, snap(target)))
    posts = [i for i, r in enumerate(records) if r[0] == "online"]
    assert len(posts) == 15
    for i in posts:
        _, online, target_before = records[i]
        target_after = records[i + 1][2]
        for o, t0, t1 in zip(online, target_before, target_after):
            torch.testing.assert_close(t1, t0 + tau * (o - t0), rtol=1e-5, atol=1e-6)
    assert trainer.rb.n_step == 10 and net.dueling


def test_a_resume_cannot_switch_the_dueling_head(tmp_path, capsys):
    from dqnfast import train

    cfg = tiny(tmp_path, total_steps=70, dueling=True)
    summary = Trainer(cfg, "demo").run()
    assert train.main(["--resume", summary["checkpoint"], "--no-dueling", "--no-progress"]) == 2
    assert "dueling True in the checkpoint, False in the config" in capsys.readouterr().err
