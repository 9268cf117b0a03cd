"""dqnfast.torchrl_buffer against TorchRL's own TensorDictReplayBuffer holding CatFrames stacks.

Every frame is self-identifying (env, episode, step in its first pixels), so a wrong frame in a stack
says where it came from. The reference is what TorchRL's DQN example does: the env stacks frames with
CatFrames and TorchRL's buffer stores whole stacks; the dqnfast buffer gets the same collector batches,
with the stacks or with the single frames, and must return the same entries bit for bit.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("torchrl", reason="the TorchRL adapter needs torchrl: pip install 'dqnfast[torchrl]'")
import torch  # noqa: E402
from tensordict import TensorDict  # noqa: E402

with warnings.catch_warnings():  # torchrl 0.14's collectors module warns about its own deprecated classes
    warnings.simplefilter("ignore", DeprecationWarning)
    from torchrl.collectors import Collector  # noqa: E402
from torchrl.data import Bounded, Categorical, Composite, LazyTensorStorage, TensorDictReplayBuffer, Unbounded  # noqa: E402
from torchrl.envs import CatFrames, EnvBase, MultiStepTransform, TransformedEnv  # noqa: E402

from dqnfast.torchrl_buffer import DqnfastTensorDictPrioritizedReplayBuffer, DqnfastTensorDictReplayBuffer  # noqa: E402

HW = (5, 6)
STACK = 4


def episode_length(env: int, episode: int) -> int:
    return 1 + (3 * env + 5 * episode) % 7  # 1..7 steps: one-step episodes and stacks reaching past starts


class FrameEnv(EnvBase):
    """``num_envs`` envs in one batched TorchRL env. A frame holds (env, episode, step) in its first
    pixels; every third episode ends by truncation, the others by termination."""

    def __init__(self, num_envs: int):
        super().__init__(batch_size=torch.Size([num_envs]))
        E = num_envs
        eol = Categorical(2, shape=(E, 1), dtype=torch.bool)  # a user's extra entry, as EndOfLifeTransform's
        self.observation_spec = Composite(pixels=Bounded(0, 255, shape=(E, 1, *HW), dtype=torch.uint8),
                                          **{"end-of-life": eol}, shape=(E,))
        self.action_spec = Categorical(4, shape=(E,))
        self.reward_spec = Unbounded(shape=(E, 1))
        flag = Categorical(2, shape=(E, 1), dtype=torch.bool)
        self.full_done_spec = Composite(done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=(E,))
        self.t = torch.zeros(E, dtype=torch.long)
        self.ep = torch.zeros(E, dtype=torch.long)

    def _frames(self) -> torch.Tensor:
        E = self.batch_size[0]
        f = torch.full((E, 1, *HW), 200, dtype=torch.uint8)
        flat = f.view(E, -1)
        flat[:, 0] = torch.arange(E)
        flat[:, 1] = self.ep % 256
        flat[:, 2] = self.t
        return f

    def _reset(self, td):
        E = self.batch_size[0]
        mask = torch.ones(E, dtype=torch.bool) if td is None or "_reset" not in td.keys() else td["_reset"].view(E)
        self.ep[mask & (self.t > 0)] += 1
        self.t[mask] = 0
        no = torch.zeros(E, 1, dtype=torch.bool)
        return TensorDict(pixels=self._frames(), done=no, terminated=no.clone(), truncated=no.clone(),
                          **{"end-of-life": no.clone()}, batch_size=[E])

    def _step(self, td):
        E = self.batch_size[0]
        self.t += 1
        end = self.t >= torch.tensor([episode_length(e, int(self.ep[e])) for e in range(E)])
        trunc = end & (self.ep % 3 == 1)
        reward = (td["action"] + 10 * self.t + 1000 * torch.arange(E)).float().unsqueeze(-1)
        eol = (self.t % 2 == 0).unsqueeze(-1)
        return TensorDict(pixels=self._frames(), reward=reward, done=end.unsqueeze(-1),
                          terminated=(end & ~trunc).unsqueeze(-1), truncated=trunc.unsqueeze(-1),
                          **{"end-of-life": eol}, batch_size=[E])

    def _set_seed(self, seed):
        return seed


def ident(frame: torch.Tensor):
    """(env, episode, step) of a frame, or None for a padding frame of zeros."""
    f = frame.reshape(-1)
    return None if not f.any() else tuple(int(v) for v in f[:3])


def batches(num_envs: int, padding: str, steps: int = 240, per_batch: int = 60):
    """Collector batches ([num_envs, T]) with both the single frames ("pixels") and CatFrames stacks
    ("stacked") of the same steps."""
    cat = CatFrames(N=STACK, dim=-3, in_keys=["pixels"], out_keys=["stacked"], padding=padding)
    env = TransformedEnv(FrameEnv(num_envs), cat)
    torch.manual_seed(0)
    collector = Collector(env, None, frames_per_batch=per_batch, total_frames=steps)
    try:
        return [d.clone() for d in collector]
    finally:
        collector.shutdown()


def as_stacks(d):
    """The batch TorchRL's DQN example stores: CatFrames stacks under "pixels"."""
    return d.exclude("pixels", ("next", "pixels")).rename_key_("stacked", "pixels").rename_key_(
        ("next", "stacked"), ("next", "pixels"))


def as_frames(d, layout):
    d = d.exclude("stacked", ("next", "stacked"))
    if layout == "2d":  # (H, W) frames
        d.set("pixels", d["pixels"].squeeze(-3))
        d.set(("next", "pixels"), d["next", "pixels"].squeeze(-3))
    return d


def fill(data, layout, capacity=2000, **kwargs):
    """The dqnfast buffer and TorchRL's, fed the same batches; id -> TorchRL storage position."""
    ours = DqnfastTensorDictReplayBuffer(capacity, stack=STACK, seed=1, **kwargs)
    ref = TensorDictReplayBuffer(storage=LazyTensorStorage(10_000))
    where = {}
    for d in data:
        ids = ours.extend(as_stacks(d) if layout == "stacks" else as_frames(d, layout))
        pos = ref.extend(as_stacks(d).reshape(-1))
        where.update(zip(ids.reshape(-1).tolist(), pos.tolist()))
    return ours, ref, where


def assert_same(ours, theirs):
    ours, theirs = ours.exclude("index"), theirs.exclude("index")
    keys = set(ours.keys(True, True))
    assert keys == set(theirs.keys(True, True))
    for k in keys:
        a, b = ours[k], theirs[k]
        assert a.dtype == b.dtype and a.shape == b.shape, (k, a.dtype, b.dtype, a.shape, b.shape)
        assert torch.equal(a, b), (k, [ident(f) for f in (a[:3].reshape(-1, *HW) if a.dtype == torch.uint8 else [])])


@pytest.fixture(scope="module")
def collected():
    cache = {}

    def get(num_envs, padding):
        if (num_envs, padding) not in cache:
            cache[num_envs, padding] = batches(num_envs, padding)
        return cache[num_envs, padding]
    return get


@pytest.mark.parametrize("layout", ["stacks", "frames", "2d"])
@pytest.mark.parametrize("padding,pad", [("same", "first"), ("constant", "zero")])
@pytest.mark.parametrize("num_envs", [1, 3])
def test_same_transitions_as_torchrl(collected, layout, padding, pad, num_envs):
    """Every stored transition, and a random sample, equal TorchRL's for the same steps: stacks across
    episode starts (CatFrames padding="same" is pad="first", "constant" is pad="zero"), one-step
    episodes, truncations, several envs, and the extra entries."""
    data = collected(num_envs, padding)
    ours, ref, where = fill(data, layout, pad=pad)
    ids = torch.as_tensor(ours.store.valid_indices())
    assert len(ids) == len(where) == len(ours) == 240
    assert_same(ours[ids], ref[torch.tensor([where[i] for i in ids.tolist()])])
    s = ours.sample(64)
    assert s["pixels"].shape == (64, STACK, *HW) and s["index"].dtype == torch.int64
    assert_same(s, ref[torch.tensor([where[i] for i in s["index"].tolist()])])
    # The data did cover what the test is about:
    every = ours[ids]
    steps = [ident(f[-1]) for f in every["pixels"]]
    assert sum(t == 0 for _, _, t in steps) > 20  # states at an episode's first step (padded)
    assert every["next", "truncated"].any() and every["next", "terminated"].any()
    assert any(episode_length(e, ep) == 1 for e, ep, _ in steps)  # one-step episodes
    assert len({e for e, _, _ in steps}) == num_envs


def test_flat_batches_are_env_major(collected):
    """data.reshape(-1) of [num_envs, T] (TorchRL's DQN example) reads as num_envs streams."""
    data = collected(3, "same")
    a = DqnfastTensorDictReplayBuffer(2000, stack=STACK, seed=1)
    b = DqnfastTensorDictReplayBuffer(2000, stack=STACK, seed=1, num_envs=3)
    for d in data:
        a.extend(as_stacks(d))
        b.extend(as_stacks(d).reshape(-1))
    assert_same(a.sample(50), b.sample(50))


def test_overwritten_transitions_leave(collected):
    """A small store: its oldest transitions go, and what remains still equals TorchRL's."""
    ours, ref, where = fill(collected(3, "same"), "frames", capacity=100)
    ids = torch.as_tensor(ours.store.valid_indices())
    assert 40 < len(ids) < 100 and ids.min() > 100
    assert_same(ours[ids], ref[torch.tensor([where[i] for i in ids.tolist()])])
    with pytest.raises(IndexError):
        ours[torch.tensor([int(ids.min()) - 5])]


def test_n_step_matches_torchrl_multistep(collected):
    """n_step=3: rewards, next frames, steps_to_next_obs and gamma as TorchRL's MultiStepTransform
    computes them. The ("next", ...) flags are the window's last step's (MultiStepTransform keeps step
    t's), so a window that reaches an episode's end is done there."""
    gamma = 0.5
    data = collected(3, "same")
    ours = DqnfastTensorDictReplayBuffer(2000, stack=STACK, seed=1, n_step=3, gamma=gamma)
    ref = TensorDictReplayBuffer(storage=LazyTensorStorage(10_000, ndim=2),
                                 transform=MultiStepTransform(n_steps=3, gamma=gamma))
    for d in data:
        ours.extend(as_frames(d, "frames"))
        ref.extend(as_stacks(d))
    theirs = {ident(td["pixels"][-1]): td for td in ref[:].reshape(-1)}
    steps = {ident(td["next", "pixels"][-1]): td for d in data for td in as_stacks(d).reshape(-1)}  # 1-step
    got = ours[torch.as_tensor(ours.store.valid_indices())]
    mine = {ident(td["pixels"][-1]): td for td in got}
    # TorchRL holds back each env's newest n steps; dqnfast only those whose window is not complete yet.
    assert set(theirs) <= set(mine) and len(theirs) == 240 - 3 * 3
    assert {int(m) for m in got["steps_to_next_obs"]} == {1, 2, 3}
    for key, td in mine.items():
        last = steps[ident(td["next", "pixels"][-1])]  # the window's last step
        assert (td["next"].exclude("reward", "original_reward") == last["next"].exclude("reward")).all()
        m = int(td["steps_to_next_obs"])
        assert (m < 3) == bool(last["next", "done"]) or m == 3
        assert torch.allclose(td["gamma"], torch.tensor(gamma ** m))
        if key not in theirs:
            continue
        ref_td = theirs[key]
        for k in ("pixels", ("next", "pixels"), "steps_to_next_obs", "action", ("next", "original_reward")):
            assert torch.equal(td[k], ref_td[k]), (k, key)
        assert torch.allclose(td["next", "reward"], ref_td["next", "reward"])
        assert td["gamma"].dtype == ref_td["gamma"].dtype and torch.allclose(td["gamma"], ref_td["gamma"])
    short = got["steps_to_next_obs"].reshape(-1) < 3
    assert got["next", "done"].reshape(-1)[short].all() and short.any()


def test_priorities(collected):
    """update_tensordict_priority (as after a TorchRL loss module) steers the draws; the weights come back."""
    rb = DqnfastTensorDictPrioritizedReplayBuffer(2000, stack=STACK, alpha=1.0, beta=0.5, seed=3, batch_size=256)
    for d in collected(3, "same"):
        rb.extend(as_stacks(d))
    s = rb.sample()
    assert s["priority_weight"].shape == (256,) and torch.allclose(s["priority_weight"], torch.ones(256))
    favourite = int(s["index"][0])
    s.set("td_error", torch.where(s["index"] == favourite, 1e6, 1e-3))
    rb.update_tensordict_priority(s)
    s2 = rb.sample()
    assert (s2["index"] == favourite).float().mean() > 0.9
    fav = s2["index"] == favourite
    assert s2["priority_weight"][fav].max() < 0.01 <= s2["priority_weight"][~fav].min()  # the favourite weighs less
    rb.update_priority(torch.tensor([favourite]), torch.tensor([0.0]))
    assert (rb.sample()["index"] == favourite).float().mean() < 0.5
    with pytest.raises(KeyError, match="td_error"):
        rb.update_tensordict_priority(s2.exclude("td_error"))


def test_dqn_loss_priority_round_trip(collected):
    """TorchRL's DQNLoss on a sample writes td_error; the buffer takes it back."""
    from torchrl.modules import QValueActor
    from torchrl.objectives import DQNLoss

    rb = DqnfastTensorDictPrioritizedReplayBuffer(2000, stack=STACK, alpha=0.6, beta=0.4, seed=3, batch_size=8)
    for d in collected(1, "same"):
        rb.extend(as_stacks(d))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(4))
    actor = QValueActor(net, in_keys=["pixels_f"], spec=Categorical(4))
    loss = DQNLoss(actor, action_space="categorical", delay_value=False)
    s = rb.sample()
    s.set("pixels_f", s["pixels"].float())
    s.set(("next", "pixels_f"), s["next", "pixels"].float())
    loss(s)["loss"].backward()
    assert s["td_error"].shape == (8, 1)
    rb.update_tensordict_priority(s)
    s = rb.sample(500)
    assert s["priority_weight"].min() < 0.99  # the new priorities differ (the old were all equal)


def test_transforms_and_index(collected):
    """Transforms run on each sample in order, "index" is set after them (TorchRL's order), on the
    result's device; an inverse transform runs on extend."""
    seen = []
    rb = DqnfastTensorDictReplayBuffer(2000, stack=STACK, seed=1, batch_size=4)
    rb.append_transform(lambda td: seen.append(("a", "index" in td.keys())) or td.set("a", torch.ones(4)))
    rb.append_transform(lambda td: td.to("cpu"))
    rb.append_transform(lambda td: td.set("written", td["next", "reward"] * 0 + 7), invert=True)
    for d in collected(1, "same"):
        rb.extend(as_stacks(d))
    s = rb.sample()
    assert seen == [("a", False)] and "a" in s.keys() and s["index"].device == torch.device("cpu")
    assert (s["written"] == 7).all()  # stored by extend


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_pin_memory_and_a_cuda_device_transform(collected):
    rb = DqnfastTensorDictReplayBuffer(2000, stack=STACK, seed=1, batch_size=4, pin_memory=True)
    for d in collected(1, "same"):
        rb.extend(as_stacks(d))
    s = rb.sample()
    assert s["pixels"].is_pinned() and s["action"].is_pinned()
    rb.append_transform(lambda td: td.to("cuda", non_blocking=True))
    s = rb.sample()
    assert s["pixels"].is_cuda and s["index"].is_cuda


def test_pin_memory_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(ValueError, match="pin_memory=True needs CUDA"):
        DqnfastTensorDictReplayBuffer(100, pin_memory=True)


def test_bad_input_raises_before_writing(collected):
    d = as_stacks(collected(3, "same")[0])
    rb = DqnfastTensorDictReplayBuffer(2000, stack=STACK, seed=1)
    rb.extend(d[:, :10])

    def fails(bad, exc, match):
        before = (len(rb), rb.write_count, rb.store.writes)
        with pytest.raises(exc, match=match):
            rb.extend(bad)
        assert (len(rb), rb.write_count, rb.store.writes) == before  # nothing written

    fails(d[:, 10:].exclude("pixels"), KeyError, r"'pixels'")
    fails(d[:, 10:].exclude(("next", "reward")), KeyError, r"\('next', 'reward'\)")
    fails(d[:, 10:].exclude(("next", "done"), ("next", "terminated"), ("next", "truncated")), KeyError, "done")
    fails(d[:, 10:].exclude(("next", "end-of-life")), ValueError, "end-of-life")
    f = d[:, 10:].clone()
    f.set("action", f["action"].to(torch.int32))
    fails(f, ValueError, r"entry 'action' is torch.int32 \(\) per step; earlier extends had torch.int64")
    f = d[:, 10:].clone()
    f.set("pixels", f["pixels"].float())
    fails(f, TypeError, r"'pixels' must be uint8")
    fails(d[:, 11:], ValueError, r"step 0: 'pixels' does not continue")  # a step was skipped
    f = d[:, 10:].clone()
    f["next", "pixels"][1, 3, 0] += 1  # next is not pixels shifted by one frame
    fails(f, ValueError, r"env 1 step 3: \('next', 'pixels'\) is not 'pixels' shifted")
    f = d[:, 10:].clone()
    f["pixels"][2, 5] = f["pixels"][2, 4]  # a repeated step inside the batch
    fails(f, ValueError, r"env 2 step \d+: ")
    f = d[:, 10:]
    gap = next(t for t in range(1, f.shape[1] - 1) if not f["next", "done"][:, t - 1].any())
    kept = [t for t in range(f.shape[1]) if t != gap]  # a step left out inside the batch, no episode end before it
    fails(f[:, kept], ValueError, rf"step {gap}: 'pixels' does not continue the previous step's")
    fails(d[:2, 10:], ValueError, r"num_envs=3")
    fails(d[:, 10:].reshape(-1)[:-1], ValueError, "cannot be 3 env streams")
    f = d[:, 10:].clone()
    f.set("pixels", f["pixels"][..., :3])
    fails(f, ValueError, "per-step shape")


def test_reset_stack_must_match_pad(collected):
    d = as_stacks(collected(1, "constant")[0])  # zero-padded stacks
    with pytest.raises(ValueError, match="pad='first'.*padding='constant' is pad='zero'"):
        DqnfastTensorDictReplayBuffer(2000, stack=STACK, pad="first").extend(d)
    DqnfastTensorDictReplayBuffer(2000, stack=STACK, pad="zero").extend(d)


def test_end_episodes_after_an_outside_reset(collected):
    data = collected(1, "same")
    rb = DqnfastTensorDictReplayBuffer(2000, stack=STACK)
    rb.extend(as_stacks(data[0]))
    restart = as_stacks(data[2])
    first = int(np.argmax(restart["next", "done"].reshape(-1).numpy())) + 1  # the step after an episode end
    with pytest.raises(ValueError, match="end_episodes"):
        rb.extend(restart[:, first:])
    rb.end_episodes()
    rb.extend(restart[:, first:])


def test_multistep_transform_is_refused():
    with pytest.raises(ValueError, match="n_step="):
        DqnfastTensorDictReplayBuffer(100).append_transform(MultiStepTransform(n_steps=3, gamma=0.9))


@pytest.mark.slow
def test_bench_runs(capsys, one_torch_thread):  # (the bench sets one torch thread)
    """`dqnfast bench torchrl` at a tiny size: every row prints (the figures are the bench's business)."""
    from dqnfast.benchmarks import main

    assert main(["torchrl", "--sizes", "1000", "--rounds", "1", "--calls", "2", "--stacked", "--chunk", "300",
                 "--episode", "40"]) == 0
    out = capsys.readouterr().out
    for row in ("dqnfast TorchRL adapter", "TorchRL SliceSampler + CatFrames", "TorchRL, stacks stored"):
        assert row in out


@pytest.mark.atari
@pytest.mark.slow
def test_example_runs(monkeypatch, capsys, one_torch_thread):
    """examples/torchrl_dqn_atari.py (TorchRL's DQN recipe with this buffer) runs on Breakout and learns
    from samples; the full-length run is for a person to start (see the README)."""
    pytest.importorskip("ale_py")
    import importlib.util
    import pathlib
    import sys

    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "torchrl_dqn_atari.py"
    spec = importlib.util.spec_from_file_location("torchrl_dqn_atari", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [str(path), "--total-frames", "300", "--frames-per-batch", "100",
                                      "--init-random-frames", "200", "--num-updates", "2", "--buffer-size", "2000",
                                      "--device", "cpu"])
    module.main()
    out = capsys.readouterr().out
    assert "done: steps=300 updates=4 buffer_transitions=300" in out
