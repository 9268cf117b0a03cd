"""Fast update steps (dqnfast.fast_update): the same maths as DQNLearner.update, compiled or graphed.

torch.compile runs on CPU, so the compiled path is checked against eager mode here; the CUDA graph
path is checked the same way where a GPU is present and skipped cleanly elsewhere.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dqnfast import Batch, empty_batch  # noqa: E402
from dqnfast.fast_update import CompiledUpdate, GraphedUpdate, bf16_dot_products, make_update  # noqa: E402
from dqnfast.learner import DQNLearner  # noqa: E402

SHAPE = (36, 36)
STACK = 2
CUDA = torch.cuda.is_available()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def learner(device="cpu", **kw) -> DQNLearner:
    kw = {"frame_shape": SHAPE, "stack": STACK, "device": device, "seed": 0, "learning_rate": 1e-3, **kw}
    return DQNLearner(3, **kw)


def batches(n: int, size: int = 8, shared: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        b = empty_batch(size, STACK, SHAPE, shared_frames=shared)
        if shared:
            b.obs.base[:] = rng.integers(0, 256, b.obs.base.shape, dtype=np.uint8)
        else:
            b.obs[:] = rng.integers(0, 256, b.obs.shape, dtype=np.uint8)
            b.next_obs[:] = rng.integers(0, 256, b.next_obs.shape, dtype=np.uint8)
        b.action[:] = rng.integers(0, 3, size)
        b.reward[:] = rng.normal(size=size).astype(np.float32) * 3
        b.terminated[:] = rng.random(size) < 0.3
        b.truncated[:] = False
        b.index[:] = np.arange(size)
        b.discount[:] = 0.99
        out.append(b)
    return out


def params(lrn: DQNLearner):
    return [p.detach().cpu().clone() for p in lrn.q_network.parameters()]


def assert_same_run(eager: DQNLearner, fast: DQNLearner, update, data, rtol=1e-4, atol=1e-5) -> None:
    for b in data:
        m_eager, m_fast = eager.update(b), update(b)
        for k in ("td_loss", "q_values", "grad_norm", "target_updated"):
            assert m_fast[k] == pytest.approx(m_eager[k], rel=rtol, abs=atol), k
    assert fast.updates == eager.updates == len(data)
    for pe, pf in zip(params(eager), params(fast)):
        torch.testing.assert_close(pf, pe, rtol=rtol, atol=atol)
    for pe, pf in zip(eager.target_network.parameters(), fast.target_network.parameters()):
        torch.testing.assert_close(pf.detach().cpu(), pe.detach().cpu(), rtol=rtol, atol=atol)


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    {},  # huber, clipped gradients, hard target copy every 2 updates
    {"loss": "mse", "max_grad_norm": None, "double_dqn": True, "optimizer": "rmsprop"},
    {"intensity": 0.1},  # the factors drawn on the host reach the compiled loss, as eager's
    {"network": "dopamine", "dueling": True, "double_dqn": True},  # DrQ(ε)'s network
], ids=["nature", "mse_unclipped_double_rmsprop", "intensity", "dopamine_network"])
def test_compiled_update_matches_eager_on_cpu(kw):
    kw = {"target_update_interval": 2, **kw}
    eager, fast = learner(**kw), learner(**kw)
    update = make_update(fast, "compile")
    assert isinstance(update, CompiledUpdate)
    assert_same_run(eager, fast, update, batches(5))
    assert eager.updates == 5 and fast.updates == 5


def prioritized(batch, seed: int):
    """``batch`` with importance weights: a PrioritizedBatch whose weights differ row to row."""
    from dqnfast import PrioritizedBatch
    weights = np.random.default_rng(seed).uniform(0.1, 1.0, len(batch.action)).astype(np.float32)
    return PrioritizedBatch(*batch, weights=weights)


@pytest.mark.slow
def test_compiled_prioritized_update_matches_eager_on_cpu():
    """The compiled prioritized step takes the eager one's step: the same importance-weighted loss
    (the metrics), the same |TD errors| as new priorities, the same weights after five steps. The
    eager step's loss is recomputed here by hand once, so neither side is only checked against the
    other."""
    kw = {"target_update_interval": 2, "double_dqn": True}
    eager, fast = learner(**kw), learner(**kw)
    update = make_update(fast, "compile")
    data = [prioritized(b, seed) for seed, b in enumerate(batches(5))]
    for k, b in enumerate(data):
        if k == 0:  # the weighted Huber loss of the first step, from the networks
            obs, action = torch.from_numpy(b.obs.copy()), torch.from_numpy(b.action)
            with torch.no_grad():
                q = eager.q_network(obs).gather(1, action.unsqueeze(1)).squeeze(1)
            target = torch.from_numpy(eager.targets(Batch(*b[:8])))
            huber = torch.nn.functional.smooth_l1_loss(q, target, reduction="none")
            expected_loss = float((torch.from_numpy(b.weights) * huber).mean())
            expected_td = (target - q).abs().double().numpy()
        (m_eager, td_eager), (m_fast, td_fast) = eager.update_prioritized(b), update.prioritized(b)
        if k == 0:
            assert m_eager["td_loss"] == pytest.approx(expected_loss, rel=1e-5)
            np.testing.assert_allclose(td_eager, expected_td, rtol=1e-5, atol=1e-6)
        assert td_fast.dtype == np.float64 and td_fast.shape == (8,)
        np.testing.assert_allclose(td_fast, td_eager, rtol=1e-4, atol=1e-5)
        for key in ("td_loss", "q_values", "grad_norm", "target_updated"):
            assert m_fast[key] == pytest.approx(m_eager[key], rel=1e-4, abs=1e-5), key
    assert fast.updates == eager.updates == 5
    for pe, pf in zip(params(eager), params(fast)):
        torch.testing.assert_close(pf, pe, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("layers", ["head", "all"])
def test_compiled_updates_learn_on_from_a_reset(layers):
    """A reset between compiled steps (in place, and the optimizer forgets the reset layers' state)
    reaches the compiled loss: after it, the compiled learner takes the steps an eager learner takes
    from the same reset, and those steps start from the fresh weights, not the ones before."""
    kw = {"target_update_interval": 1, "optimizer": "adam"}
    eager, fast = learner(**kw), learner(**kw)
    update = make_update(fast, "compile")
    data = batches(6)
    for b in data[:3]:
        eager.update(b), update(b)
    before = params(fast)
    for lrn in (eager, fast):
        torch.manual_seed(123)  # the same fresh weights for both
        lrn.reset_layers(layers, shrink=0.5)
    assert any(not torch.equal(a, b) for a, b in zip(before, params(fast)))
    assert len(fast.optimizer.state) < len(params(fast))  # the reset layers' Adam moments are gone
    for b in data[3:]:
        m_eager, m_fast = eager.update(b), update(b)
        for k in ("td_loss", "q_values", "grad_norm"):
            assert m_fast[k] == pytest.approx(m_eager[k], rel=1e-4, abs=1e-5), k
    assert fast.updates == eager.updates == 6
    for pe, pf in zip(params(eager), params(fast)):
        torch.testing.assert_close(pf, pe, rtol=1e-4, atol=1e-5)


def test_clipping_is_part_of_the_fast_step():
    """A tiny max_grad_norm must change the step: the clip is not skipped (checked through the
    learner's clipping, which both fast paths use, without compiling)."""
    clipped, free = learner(max_grad_norm=1e-3), learner(max_grad_norm=None)
    b = batches(1)[0]
    norms = []
    for lrn in (clipped, free):
        loss, _ = lrn.loss_and_q(*lrn.batch_tensors(b))
        loss.backward()
        norms.append(float(lrn.clip_gradients()))
        total = torch.sqrt(sum(p.grad.pow(2).sum() for p in lrn.q_network.parameters()))
        norms.append(float(total))
    # the reported norm is the norm before clipping in both cases; after clipping it is max_grad_norm
    assert norms[0] == pytest.approx(norms[2], rel=1e-5)
    assert norms[1] == pytest.approx(1e-3, rel=1e-3)
    assert norms[3] == pytest.approx(norms[2], rel=1e-5)


def test_graph_mode_needs_cuda_and_says_so():
    with pytest.raises(ValueError, match="CUDA"):
        GraphedUpdate(learner(), 8)


def test_graph_mode_refuses_the_intensity_augmentation():
    """A captured graph would replay without the per-batch factors: refused before any capture."""
    with pytest.raises(ValueError, match="intensity"):
        GraphedUpdate(learner(intensity=0.05), 8)


@pytest.mark.parametrize("mode, kw, err, match", [
    ("fast", {}, ValueError, "update mode must be one of"),
    ("eager", {"autocast_bf16": True}, ValueError, "autocast_bf16 needs"),
    ("graph", {}, ValueError, "batch_size"),
])
def test_make_update_rejects_bad_arguments(mode, kw, err, match):
    with pytest.raises(err, match=match):
        make_update(learner(), mode, **kw)


@pytest.mark.parametrize("flags, found", [
    ("fpu avx2 avx512f avx512bw avx512_vnni", ""),  # AVX-512 without bfloat16 dot products
    ("fpu avx2 avx512f avx512_bf16 avx512_vnni", "avx512_bf16"),
    ("fpu avx2 amx_tile amx_bf16 amx_int8 avx512_bf16", "avx512_bf16, amx_bf16"),
    ("fpu avx2 fma avx_vnni", ""),  # a laptop's AVX2 with AVX-VNNI (integer dot products only)
])
def test_bf16_dot_products_reads_the_cpus_flags(tmp_path, flags, found):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: some cpu\nflags\t\t: {flags}\nbugs\t\t: avx512_bf16_x\n")
    assert bf16_dot_products(str(cpuinfo)) == found
    assert bf16_dot_products(str(tmp_path / "absent")) is None  # unknown (not Linux), not "none"


def test_eager_mode_is_the_learners_own_update():
    a, b = learner(), learner()
    update = make_update(b, "eager")
    for batch in batches(2):
        assert update(batch) == a.update(batch)


def test_fast_updates_refuse_a_learner_with_another_update_rule():
    from dqnfast.recurrent import DRQNLearner
    drqn = DRQNLearner(3, frame_shape=SHAPE, device="cpu", seed=0)
    with pytest.raises(TypeError, match="DRQNLearner"):
        CompiledUpdate(drqn)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("shared", [False, True], ids=["separate", "shared_frames"])
def test_graphed_update_matches_eager_on_cuda(shared):  # pragma: no cover - no GPU in CI
    torch.backends.cudnn.deterministic = True
    kw = {"target_update_interval": 2}
    eager, fast = learner("cuda", **kw), learner("cuda", **kw)
    eager.update(batches(1, shared=shared, seed=9)[0])  # a restored optimizer state is kept by the capture
    fast.update(batches(1, shared=shared, seed=9)[0])
    eager.updates = fast.updates = 0
    update = make_update(fast, "graph", batch_size=8, shared_frames=shared)
    assert isinstance(update, GraphedUpdate)
    assert_same_run(eager, fast, update, batches(5, shared=shared), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        update(batches(1, size=4, shared=shared)[0])


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_graphed_update_with_bf16_autocast_stays_close_to_eager():  # pragma: no cover - no GPU in CI
    eager, fast = learner("cuda"), learner("cuda")
    update = make_update(fast, "graph", batch_size=8, autocast_bf16=True)
    for b in batches(3):
        m_eager, m_fast = eager.update(b), update(b)
        assert m_fast["td_loss"] == pytest.approx(m_eager["td_loss"], rel=0.05, abs=1e-2)
