"""Fixtures shared by the tests."""
import pytest


@pytest.fixture()
def one_torch_thread():
    """Tiny networks on 2 shared cores: a second intra-op thread only adds contention (measured up to
    20x slower while the other core is busy). Restores torch's setting afterwards."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
