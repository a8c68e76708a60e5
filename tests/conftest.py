import pytest
import torch

from pot.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox():
    with Sandbox() as box:
        yield box


@pytest.fixture
def one_thread(request):
    """Tiny models run fastest on one thread: more only adds synchronization on shared cores."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
