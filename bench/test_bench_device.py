"""pytest-benchmark: DeviceReplayBuffer (torch mirror, here on cpu) against the native buffer + torch.from_numpy.

    python -m pytest bench/test_bench_device.py --benchmark-group-by=group
"""
import numpy as np
import pytest

from conftest import CAPACITY
from dqnfast import ReplayBuffer
from dqnfast.benchmarks.replay import fill

torch = pytest.importorskip("torch")
from dqnfast.torch_replay import DeviceReplayBuffer  # noqa: E402

SHAPE = (84, 84)


@pytest.fixture(scope="module")
def device_rb():
    d = DeviceReplayBuffer(CAPACITY, SHAPE, seed=0, device="cpu")
    fill(d, CAPACITY + CAPACITY // 10, SHAPE)
    return d


@pytest.mark.benchmark(group="sample32-torch")
def test_sample_device_cpu(benchmark, device_rb):
    benchmark(device_rb.sample, 32)


@pytest.mark.benchmark(group="sample32-torch")
def test_sample_native_then_from_numpy(benchmark, device_rb):
    rb = device_rb.buffer  # the same store and fill

    def native_to_torch():
        return [torch.from_numpy(a) for a in rb.sample(32)]

    benchmark(native_to_torch)


@pytest.mark.benchmark(group="add-torch")
@pytest.mark.parametrize("impl", ["device_cpu", "native"])
def test_add(benchmark, impl, device_rb):
    rb = device_rb if impl == "device_cpu" else ReplayBuffer(CAPACITY, SHAPE, seed=0)
    frame = np.zeros(SHAPE, np.uint8)
    rb.start_episode(frame)
    benchmark(rb.add, 1, 1.0, frame, False)
