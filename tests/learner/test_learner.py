"""DQNLearner and QNetwork: TD targets, Double DQN, target sync, acting, and learning a tiny game."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dqnfast import ReplayBuffer, empty_batch  # noqa: E402
from dqnfast.batch import shared_frames  # noqa: E402
from dqnfast.learner import DQNLearner, QNetwork  # noqa: E402

from support.tiny_env import CatchEnv  # noqa: E402

GAMMA = 0.9
SHAPE = (36, 36)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def constant_head(net: QNetwork, values) -> None:
    """Make ``net`` output ``values`` for every input (zero last-layer weights, bias = values)."""
    last = net.network[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.as_tensor(values, dtype=torch.float32))


def make_batch(rewards, terminated, truncated, actions=None, stack=1, shape=SHAPE, seed=0) -> "Batch":  # noqa: F821
    n = len(rewards)
    b = empty_batch(n, stack, shape)
    rng = np.random.default_rng(seed)
    b.obs[:] = rng.integers(0, 256, b.obs.shape, dtype=np.uint8)
    b.next_obs[:] = rng.integers(0, 256, b.next_obs.shape, dtype=np.uint8)
    b.action[:] = 0 if actions is None else actions
    b.reward[:] = rewards
    b.terminated[:] = terminated
    b.truncated[:] = truncated
    b.index[:] = np.arange(n)
    b.discount[:] = GAMMA
    return b


def learner(cls=DQNLearner, **kw) -> DQNLearner:
    kw = {"frame_shape": SHAPE, "stack": 1, "device": "cpu", "seed": 0, **kw}
    return cls(3, **kw)


# -- the network ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, flat", [(84, 64 * 7 * 7), (80, 64 * 6 * 6), (52, 64 * 3 * 3), (36, 64)])
def test_qnetwork_flatten_size_follows_the_frame(size, flat):
    net = QNetwork(6, stack=4, frame_shape=(size, size))
    assert net.network[7].in_features == flat
    out = net(torch.zeros(2, 4, size, size, dtype=torch.uint8))
    assert out.shape == (2, 6)


def test_qnetwork_scales_uint8_input_inside_forward():
    torch.manual_seed(0)
    net = QNetwork(4, stack=2, frame_shape=(40, 48))
    x = torch.randint(0, 256, (3, 2, 40, 48), dtype=torch.uint8)
    torch.testing.assert_close(net(x), net.network(x.float() / 255.0))


def test_qnetwork_rejects_bad_arguments():
    with pytest.raises(ValueError, match="too small"):
        QNetwork(4, frame_shape=(35, 84))
    with pytest.raises(ValueError, match="num_actions"):
        QNetwork(0)
    with pytest.raises(TypeError, match="stack"):
        QNetwork(4, stack=2.0)
    with pytest.raises(ValueError, match="height, width"):
        QNetwork(4, frame_shape=(84, 84, 3))


def test_learner_rejects_bad_arguments():
    for kw, err, msg in [({"loss": "l1"}, ValueError, "loss"),
                         ({"optimizer": "sgd"}, ValueError, "optimizer"), ({"tau": 0.0}, ValueError, "tau"),
                         ({"target_update_interval": 0}, ValueError, "target_update_interval"),
                         ({"max_grad_norm": -1.0}, ValueError, "max_grad_norm"),
                         ({"learning_rate": 0.0}, ValueError, "learning_rate")]:
        with pytest.raises(err, match=msg):
            learner(**kw)


# -- TD targets ----------------------------------------------------------------------------------------
def test_targets_terminated_stops_bootstrapping_truncated_does_not():
    lrn = learner()
    constant_head(lrn.target_network, [1.0, 3.0, 2.0])  # max_a' Q_target(s', a') = 3 for every s'
    batch = make_batch(rewards=[0.5, 0.5, 0.5, -1.0], terminated=[False, True, False, True],
                       truncated=[False, False, True, True])
    np.testing.assert_allclose(lrn.targets(batch), [0.5 + GAMMA * 3, 0.5, 0.5 + GAMMA * 3, -1.0], rtol=1e-6)


def test_targets_use_the_batch_discount_of_n_step_returns():
    lrn = learner()
    constant_head(lrn.target_network, [1.0, 3.0, 2.0])
    batch = make_batch(rewards=[2.0, 2.0, 2.0], terminated=[False, False, True], truncated=[False, False, False])
    batch.discount[:] = [GAMMA ** 3, GAMMA ** 2, GAMMA]  # full window, cut by an episode end, terminal
    np.testing.assert_allclose(lrn.targets(batch), [2 + GAMMA ** 3 * 3, 2 + GAMMA ** 2 * 3, 2.0], rtol=1e-6)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_update_regresses_q_of_the_taken_action_onto_the_target(loss):
    lrn = learner(loss=loss, max_grad_norm=None)
    constant_head(lrn.target_network, [1.0, 3.0, 2.0])
    constant_head(lrn.q_network, [0.0, 10.0, 20.0])  # Q(s, a) = 0, 10, 20 for actions 0, 1, 2
    batch = make_batch(rewards=[1.0, 1.0, 1.0], terminated=[False, True, False], truncated=[False, False, True],
                       actions=[0, 1, 2])
    target = np.array([1 + GAMMA * 3, 1.0, 1 + GAMMA * 3])
    err = np.array([0.0, 10.0, 20.0]) - target
    expected = np.mean(err ** 2) if loss == "mse" else np.mean(np.where(np.abs(err) < 1, 0.5 * err ** 2, np.abs(err) - 0.5))
    m = lrn.update(batch)
    assert m["td_loss"] == pytest.approx(expected, rel=1e-5)
    assert m["q_values"] == pytest.approx(10.0, rel=1e-5)
    assert m["grad_norm"] > 0 and np.isfinite(m["grad_norm"])
    assert lrn.updates == 1


def test_double_dqn_selects_with_online_and_evaluates_with_target():
    batch = make_batch(rewards=[0.0, 2.0], terminated=[False, False], truncated=[False, True])
    q_online = [0.0, 5.0, 1.0]   # online argmax: action 1
    q_target = [10.0, 2.0, 3.0]  # target argmax: action 0
    plain, double = learner(), learner(double_dqn=True)
    for lrn in (plain, double):
        constant_head(lrn.q_network, q_online)
        constant_head(lrn.target_network, q_target)
    np.testing.assert_allclose(plain.targets(batch), [GAMMA * 10.0, 2.0 + GAMMA * 10.0], rtol=1e-6)
    np.testing.assert_allclose(double.targets(batch), [GAMMA * 2.0, 2.0 + GAMMA * 2.0], rtol=1e-6)


# -- target network updates -----------------------------------------------------------------------------
def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_hard_target_copy_every_c_updates():
    lrn = learner(target_update_interval=3, learning_rate=1e-2)
    batch = make_batch(rewards=[1.0] * 4, terminated=[False] * 4, truncated=[False] * 4)
    initial = _params(lrn.target_network)
    assert _same(initial, _params(lrn.q_network))
    for u in range(1, 8):
        m = lrn.update(batch)
        online, target = _params(lrn.q_network), _params(lrn.target_network)
        assert bool(m["target_updated"]) == (u % 3 == 0), u
        if u % 3 == 0:
            assert _same(online, target), f"target not synced at update {u}"
            synced = target
        else:
            assert not _same(online, target), f"target synced early at update {u}"
            assert _same(target, initial if u < 3 else synced), f"target moved between syncs at update {u}"


def test_polyak_target_update():
    lrn = learner(target_update_interval=1, tau=0.25, learning_rate=1e-2)
    batch = make_batch(rewards=[1.0] * 4, terminated=[False] * 4, truncated=[False] * 4)
    before = _params(lrn.target_network)
    lrn.update(batch)
    for t0, t1, o in zip(before, _params(lrn.target_network), _params(lrn.q_network)):
        torch.testing.assert_close(t1, 0.75 * t0 + 0.25 * o)
    assert not _same(before, _params(lrn.target_network))


class _TwoPassLearner(DQNLearner):
    """The reference: always runs the target network, as if it could differ from the online one."""
    target_is_online = False


def _target_passes(lrn: DQNLearner) -> list:
    calls: list = []
    lrn.target_network.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("double_dqn", [False, True])
def test_a_target_copied_after_every_update_is_not_run_but_gives_the_same_weights(double_dqn):
    kw = dict(target_update_interval=1, double_dqn=double_dqn, learning_rate=1e-2)
    fast, ref = learner(**kw), learner(_TwoPassLearner, **kw)
    assert fast.target_is_online and _same(_params(fast.q_network), _params(ref.q_network))
    fast_calls, ref_calls = _target_passes(fast), _target_passes(ref)
    for seed in range(5):
        batch = make_batch(rewards=[1.0, 0.0, -1.0, 0.5], terminated=[False, True, False, False],
                           truncated=[False] * 4, actions=[0, 1, 2, 1], seed=seed)
        np.testing.assert_array_equal(fast.targets(batch), ref.targets(batch))
        fast.update(batch), ref.update(batch)
    assert _same(_params(fast.q_network), _params(ref.q_network))  # bit for bit, 5 updates on
    assert len(fast_calls) == 0 and len(ref_calls) == 10  # ref: targets() and update(), 5 times each


@pytest.mark.parametrize("kw", [dict(target_update_interval=2), dict(target_update_interval=1, tau=0.5)])
def test_a_target_that_can_differ_is_run(kw):
    lrn = learner(double_dqn=True, **kw)
    assert not lrn.target_is_online
    calls = _target_passes(lrn)
    lrn.update(make_batch(rewards=[1.0] * 4, terminated=[False] * 4, truncated=[False] * 4))
    assert len(calls) == 1


# -- acting ----------------------------------------------------------------------------------------------
def test_act_greedy_random_and_batched():
    lrn = learner(stack=2)
    constant_head(lrn.q_network, [0.0, 0.0, 1.0])
    state = np.zeros((2, *SHAPE), np.uint8)
    assert lrn.act(state, 0.0) == 2
    assert isinstance(lrn.act(state, 0.0), int)
    counts = np.bincount([lrn.act(state, 1.0) for _ in range(600)], minlength=3)
    assert counts.min() > 120  # uniform over 3 actions
    states = np.zeros((5, 2, *SHAPE), np.uint8)
    actions = lrn.act(states, 0.0)
    assert actions.dtype == np.int64 and actions.tolist() == [2] * 5
    np.testing.assert_allclose(lrn.q_values(state), [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="epsilon"):
        lrn.act(state, 1.5)
    with pytest.raises(TypeError, match="uint8"):
        lrn.act(state.astype(np.float32), 0.1)
    with pytest.raises(ValueError, match="shape"):
        lrn.act(np.zeros((3, *SHAPE), np.uint8), 0.1)
    with pytest.raises(TypeError, match="Batch"):
        lrn.update({"obs": state})


def test_empty_batch_matches_the_replay_and_is_pinned_only_with_cuda():
    lrn = learner(stack=2)
    rb = ReplayBuffer(64, SHAPE, stack=2, seed=0)
    b = lrn.empty_batch(8)
    ref = rb.empty_batch(8)
    for got, want in zip(b, ref):
        assert got.shape == want.shape and got.dtype == want.dtype
    rb.start_episode(np.zeros(SHAPE, np.uint8))
    for i in range(5):
        rb.add(i % 3, 1.0, np.full(SHAPE, i, np.uint8), False)
    lrn.update(rb.sample(8, out=b))  # sampling straight into the learner's arrays
    assert not torch.from_numpy(b.obs).is_pinned()


def test_shared_frames_empty_batch_is_one_array_and_samples_like_the_replay():
    lrn = learner(stack=2)
    b = lrn.empty_batch(8, shared_frames=True)
    frames = shared_frames(b)
    assert frames is not None and frames is b.obs.base and frames.shape == (8, 3, *SHAPE)
    for got, want in zip(b, ReplayBuffer(64, SHAPE, stack=2).empty_batch(8, shared_frames=True)):
        assert got.shape == want.shape and got.dtype == want.dtype and got.strides == want.strides
    assert not torch.from_numpy(frames).is_pinned()
    assert shared_frames(lrn.empty_batch(8)) is None


def shared_copy(batch: "Batch") -> "Batch":  # noqa: F821
    """The same transitions in the shared-frames layout (next_obs must be obs shifted by one frame)."""
    out = empty_batch(len(batch.action), batch.obs.shape[1], batch.obs.shape[2:], shared_frames=True)
    out.obs[:] = batch.obs
    out.next_obs[:, -1] = batch.next_obs[:, -1]
    for name in ("action", "reward", "terminated", "truncated", "index", "discount"):
        getattr(out, name)[:] = getattr(batch, name)
    np.testing.assert_array_equal(out.next_obs, batch.next_obs)
    return out


@pytest.mark.parametrize("double_dqn", [False, True])
def test_update_on_a_shared_batch_equals_update_on_the_standard_batch(double_dqn):
    rb = ReplayBuffer(200, SHAPE, stack=3, seed=4)
    rng = np.random.default_rng(1)
    rb.start_episode(rng.integers(0, 256, SHAPE, dtype=np.uint8))
    for i in range(150):
        end = i % 37 == 36
        rb.add(int(rng.integers(3)), float(rng.normal()), rng.integers(0, 256, SHAPE, dtype=np.uint8), end)
        if end:
            rb.start_episode(rng.integers(0, 256, SHAPE, dtype=np.uint8))
    a = learner(stack=3, double_dqn=double_dqn, learning_rate=1e-2, target_update_interval=2)
    b = learner(stack=3, double_dqn=double_dqn, learning_rate=1e-2, target_update_interval=2)
    for _ in range(4):
        std = rb.sample(16)
        shared = shared_copy(std)
        np.testing.assert_array_equal(a.targets(std), b.targets(shared))
        ma, mb = a.update(std), b.update(shared)
        assert ma == mb
        assert _same(_params(a.q_network), _params(b.q_network))
        assert _same(_params(a.target_network), _params(b.target_network))


def test_a_shared_batch_goes_to_the_device_as_one_array():
    lrn = learner(stack=2)
    std = make_batch(rewards=[1.0] * 4, terminated=[False] * 4, truncated=[False] * 4, stack=2)
    shared = lrn.empty_batch(4, shared_frames=True)
    for name, a in zip(std._fields, std):
        if name != "next_obs":
            getattr(shared, name)[:] = a
    shared.next_obs[:, -1] = std.next_obs[:, -1]  # the rest of next_obs is obs shifted by one frame
    obs, _, _, next_obs, _, _ = lrn.batch_tensors(shared)
    assert obs.untyped_storage().data_ptr() == next_obs.untyped_storage().data_ptr()  # one transfer
    assert obs.shape == next_obs.shape == (4, 2, *SHAPE)
    assert torch.equal(obs, torch.from_numpy(std.obs))
    assert torch.equal(next_obs[:, -1], torch.from_numpy(std.next_obs[:, -1]))
    assert torch.equal(next_obs[:, 0], torch.from_numpy(std.obs[:, 1]))
    obs, _, _, next_obs, _, _ = lrn.batch_tensors(std)
    assert obs.untyped_storage().data_ptr() != next_obs.untyped_storage().data_ptr()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_are_pinned_and_update_runs():  # pragma: no cover - no GPU in CI
    lrn = learner(stack=2, device="cuda")
    b = lrn.empty_batch(4)
    assert torch.from_numpy(b.obs).is_pinned()
    s = lrn.empty_batch(4, shared_frames=True)
    assert torch.from_numpy(s.obs.base).is_pinned()
    s.obs.base[:] = 3
    s.action[:] = 1
    s.reward[:] = 0.5
    s.terminated[:] = False
    s.truncated[:] = False
    s.discount[:] = 0.99
    assert np.isfinite(lrn.update(s)["td_loss"])
    b.obs[:] = 1
    b.next_obs[:] = 2
    b.action[:] = 1
    b.reward[:] = 0.5
    b.terminated[:] = False
    b.truncated[:] = False
    b.discount[:] = 0.99
    assert np.isfinite(lrn.update(b)["td_loss"])


def test_state_dict_round_trip():
    a, b = learner(seed=1), learner(seed=2)
    batch = make_batch(rewards=[1.0] * 4, terminated=[False] * 4, truncated=[False] * 4)
    a.update(batch)
    b.load_state_dict(a.state_dict())
    assert b.updates == 1
    assert _same(_params(a.q_network), _params(b.q_network))
    assert _same(_params(a.target_network), _params(b.target_network))
    ma, mb = a.update(batch), b.update(batch)  # same optimizer state -> same step
    assert ma["td_loss"] == pytest.approx(mb["td_loss"])
    assert _same(_params(a.q_network), _params(b.q_network))
    assert a.rng.random() == b.rng.random()


# -- learning --------------------------------------------------------------------------------------------
def play_greedy(lrn: DQNLearner, episodes: int, seed: int) -> float:
    env = CatchEnv()
    stacker = ReplayBuffer(64, env.frame_shape, stack=lrn.stack, seed=0)
    total = 0.0
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        stacker.start_episode(obs)
        while True:
            a = lrn.act(stacker.stacked(), 0.0)
            obs, r, term, trunc, _ = env.step(a)
            total += r
            if term or trunc:
                break
            stacker.add(a, r, obs, term, trunc)
    return total / episodes


@pytest.mark.slow  # learns a task: thousands of updates
def test_learns_catch_from_a_seed():
    """DQN on the tiny Catch game: random play scores about -0.5, the trained agent nearly +1."""
    seed, steps, starts = 0, 1500, 200
    env = CatchEnv()
    rb = ReplayBuffer(10_000, env.frame_shape, stack=2, seed=seed)
    lrn = DQNLearner(env.num_actions, frame_shape=env.frame_shape, stack=2, learning_rate=5e-4,
                     target_update_interval=100, double_dqn=True, device="cpu", seed=seed)
    assert play_greedy(lrn, 100, seed=10_000) < 0.5  # the untrained network does not already play
    obs, _ = env.reset(seed=seed)
    rb.start_episode(obs)
    batch = lrn.empty_batch(32)
    for step in range(steps):
        a = lrn.act(rb.stacked(), max(0.05, 1.0 - step / (steps / 2)))
        obs, r, term, trunc, _ = env.step(a)
        rb.add(a, r, obs, term, trunc)
        if term or trunc:
            obs, _ = env.reset()
            rb.start_episode(obs)
        if step >= starts:
            lrn.update(rb.sample(32, out=batch))
    assert play_greedy(lrn, 100, seed=10_000) >= 0.8


# -- gradient-norm clipping, through the config the trainer builds learners from ---------------------------
def _grads_at_optimizer_step(learner_, batch):
    """The update's metrics and the gradients the optimizer stepped with."""
    seen = []
    step = learner_.optimizer.step

    def spy(*args, **kwargs):
        seen.append([p.grad.detach().clone() for p in learner_.q_network.parameters()])
        return step(*args, **kwargs)

    learner_.optimizer.step = spy
    metrics = learner_.update(batch)
    return metrics, seen[0]


def _norm(grads):
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))


@pytest.mark.parametrize("recurrent", [False, True])
def test_updates_clip_the_gradient_norm_to_max_grad_norm(recurrent):
    from dqnfast.config import preset
    from dqnfast.recurrent import build_learner
    from dqnfast.batch import empty_sequence_batch

    def build(max_grad_norm):
        cfg = preset("demo", frame_size=36, crop=None, recurrent=recurrent, lstm_hidden=16, max_grad_norm=max_grad_norm)
        return build_learner(cfg, 3, device="cpu", seed=0)

    if recurrent:
        rng = np.random.default_rng(0)
        batch = empty_sequence_batch(4, 3, SHAPE)
        batch.frames[:] = rng.integers(0, 256, batch.frames.shape, dtype=np.uint8)
        batch.action[:] = rng.integers(3, size=batch.action.shape)
        batch.reward[:] = 50.0
        batch.terminated[:] = False
        batch.mask[:] = True
    else:
        batch = make_batch([50.0] * 8, [True] * 8, [False] * 8, stack=4)
    m_free, free = _grads_at_optimizer_step(build(None), batch)
    raw = _norm(free)
    assert raw > 0.2 and m_free["grad_norm"] == pytest.approx(raw, rel=1e-4)

    m_clip, clipped = _grads_at_optimizer_step(build(0.05), batch)
    assert _norm(clipped) == pytest.approx(0.05, rel=1e-4)  # the optimizer stepped with the clipped gradient
    assert m_clip["grad_norm"] == pytest.approx(raw, rel=1e-4)  # the log reports the norm before clipping
    for g, f in zip(clipped, free):
        assert torch.allclose(g, f * (0.05 / raw), rtol=1e-4, atol=1e-7)  # same direction, scaled
