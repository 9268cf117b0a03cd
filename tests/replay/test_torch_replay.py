"""DeviceReplayBuffer: the same batches as ReplayBuffer.sample, gathered from a torch-device mirror."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dqnfast import ReplayBuffer  # noqa: E402
from dqnfast.torch_replay import DeviceReplayBuffer, TorchBatch  # noqa: E402
from support.frames import check_stack, make_frame  # noqa: E402
from support.streams import StreamDriver  # noqa: E402

SHAPE = (6, 5)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def assert_same(host, dev: TorchBatch) -> None:
    """A host Batch and a TorchBatch hold the same values and dtypes, field by field."""
    assert type(dev) is TorchBatch
    for name in TorchBatch._fields:
        want, got = getattr(host, name), getattr(dev, name).cpu().numpy()
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert got.dtype == want.dtype, name


def assert_mirror_is_the_store(d: DeviceReplayBuffer) -> None:
    mirror = d.frames.cpu().numpy()
    np.testing.assert_array_equal(mirror[:-1], d.buffer.frames_view())
    assert not mirror[-1].any(), "the padding row must stay zero"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pad", ["zero", "first"])
@pytest.mark.parametrize("vectorized, n_step", [(False, 1), (True, 1), (False, 3)])
def test_sample_equals_replay_buffer_sample_on_random_streams_with_wraparound(device, pad, vectorized, n_step):
    num_envs, capacity = 3, 97  # a prime capacity: add_batch rows straddle the wrap at changing offsets
    host = ReplayBuffer(capacity, SHAPE, stack=4, num_envs=num_envs, seed=11, pad=pad, n_step=n_step, gamma=0.9)
    dev = DeviceReplayBuffer(capacity, SHAPE, stack=4, num_envs=num_envs, seed=11, pad=pad, device=device,
                             n_step=n_step, gamma=0.9)
    drv = StreamDriver(num_envs, SHAPE, seed=3, p_terminate=0.1, p_truncate=0.06)
    padded = 0
    for _ in range(12):  # wraps the store several times, sampling in between
        if vectorized:
            drv.run_vectorized([host, dev], 40)
        else:
            drv.run([host, dev], 90)
        assert len(dev) == len(host) and dev.writes == host.writes
        want, got = host.sample(24), dev.sample(24)
        assert_same(want, got)
        assert got.obs.device.type == device
        for i in range(24):  # and they are real transitions (not just equal garbage)
            if pad == "zero":
                padded += check_stack(want.obs[i])[1]
        # the numpy-side option draws from the same stream
        np.testing.assert_array_equal(dev.sample_numpy(8).index, host.sample(8).index)
    assert host.writes > 4 * capacity
    assert pad == "first" or padded > 0, "the streams should exercise zero padding"
    assert_mirror_is_the_store(dev)


@pytest.mark.parametrize("device", DEVICES)
def test_wrapping_an_existing_buffer_copies_what_it_holds(device):
    a = ReplayBuffer(50, SHAPE, stack=3, num_envs=2, seed=5)
    b = ReplayBuffer(50, SHAPE, stack=3, num_envs=2, seed=5)
    drv = StreamDriver(2, SHAPE, seed=8)
    drv.run([a, b], 130)  # a has wrapped before it is wrapped
    d = DeviceReplayBuffer(buffer=a, device=device)
    assert d.buffer is a and (d.capacity, d.stack, d.num_envs, d.frame_shape) == (50, 3, 2, SHAPE)
    assert_mirror_is_the_store(d)
    assert_same(b.sample(16), d.sample(16))
    drv.run([d, b], 70)
    assert_same(b.sample(16), d.sample(16))


def test_wrapping_a_large_buffer_copies_it_in_chunks():
    a = ReplayBuffer(9000, (2, 3), stack=2, seed=2)  # more slots than one 4096-row copy
    StreamDriver(1, (2, 3), seed=4).run([a], 9500)
    assert_mirror_is_the_store(DeviceReplayBuffer(buffer=a))


def test_a_partly_filled_buffer_mirrors_only_written_slots():
    a = ReplayBuffer(40, SHAPE, stack=2, seed=1)
    one = [make_frame(0, 0, s, SHAPE) for s in range(4)]
    a.start_episode(one[0])
    for s in range(1, 4):
        a.add(s, 0.0, one[s], False)
    d = DeviceReplayBuffer(buffer=a)
    assert_mirror_is_the_store(d)
    assert d.start_episode(one[0], 0) == 4  # returns the write number, as the native call does
    assert d.add(1, 1.0, one[1], True) == 5


def test_writing_to_the_wrapped_buffer_directly_is_caught():
    d = DeviceReplayBuffer(30, SHAPE, stack=2, seed=0)
    d.start_episode(make_frame(0, 0, 0, SHAPE))
    d.buffer.add(1, 0.0, make_frame(0, 0, 1, SHAPE), False)  # bypasses the mirror
    with pytest.raises(RuntimeError, match="out of sync"):
        d.add(2, 0.0, make_frame(0, 0, 2, SHAPE), False)


def test_bad_input_is_rejected_before_anything_is_written():
    d = DeviceReplayBuffer(30, SHAPE, stack=2, num_envs=2, seed=0)
    d.start_episodes(np.stack([make_frame(e, 0, 0, SHAPE) for e in range(2)]))
    before = d.frames.clone()
    with pytest.raises(ValueError, match="shape"):
        d.add(1, 0.0, np.zeros((5, 6), np.uint8), False)
    with pytest.raises(TypeError, match="uint8"):
        d.add(1, 0.0, np.zeros(SHAPE, np.float32), False)
    with pytest.raises(ValueError, match="shape"):
        d.add_batch(np.array([1, 2]), np.zeros(2), np.zeros((2, 5, 6), np.uint8), np.zeros(2, bool))
    with pytest.raises(IndexError):
        d.start_episode(make_frame(0, 1, 0, SHAPE), env=2)
    assert d.writes == 2 and torch.equal(d.frames, before)
    with pytest.raises(ValueError, match="positive"):
        d.sample(0)


def test_sampling_an_empty_buffer_raises():
    with pytest.raises(ValueError, match="cannot sample"):
        DeviceReplayBuffer(30, SHAPE, stack=2).sample(4)


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(capacity=30, device="tpu9"), ValueError, "unknown device 'tpu9'"),
    (dict(capacity=30, device=0.5), TypeError, "device must be a str or torch.device"),
    (dict(capacity=30, device="meta"), ValueError, "cpu or cuda"),
    (dict(), TypeError, "needs capacity"),
    (dict(capacity=30, frame_shape=(0, 3)), ValueError, "frame_shape entries must be positive"),
    (dict(buffer=np.zeros(3)), TypeError, "dqnfast.ReplayBuffer"),
])
def test_bad_constructor_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        DeviceReplayBuffer(**kwargs)


def test_buffer_and_capacity_together_are_rejected():
    with pytest.raises(ValueError, match="not both"):
        DeviceReplayBuffer(30, buffer=ReplayBuffer(30, SHAPE, stack=2))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        DeviceReplayBuffer(30, SHAPE, stack=2, device="cuda")


def test_import_dqnfast_does_not_import_torch():
    import dqnfast
    pkg_root = os.path.dirname(os.path.dirname(dqnfast.__file__))  # the child imports this checkout's dqnfast
    code = "import sys, dqnfast; assert 'torch' not in sys.modules, 'import dqnfast imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": pkg_root})
