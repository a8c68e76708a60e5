import pytest

from pot.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox():
    with Sandbox() as box:
        yield box
