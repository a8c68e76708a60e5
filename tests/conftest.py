import fcntl

import pytest
import torch

from pot.sandbox import Sandbox
from pot.tasks import Task
from pot.tasks.mbppplus import SHIPPED_FILE, cache_path, load_mbppplus


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


@pytest.fixture(scope="session")
def shipped_mbppplus() -> list[Task]:
    """The shipped MBPP+ tasks. Their expected outputs take minutes to compute, once per machine
    (then cached): under a lock, so that a second pytest-xdist worker waits for the first one's
    instead of computing them too."""
    lock = cache_path(SHIPPED_FILE).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        return load_mbppplus()
