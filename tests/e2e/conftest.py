from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import ServerProcess


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, delivery_processes: dict[str, str]) -> Iterator[ServerProcess]:
    """One server for the module: every test works in queues of its own."""
    server = ServerProcess(data_dir=tmp_path_factory.mktemp("shared") / "data", env=delivery_processes).start()
    yield server
    server.kill()


@pytest.fixture
def http(shared_server: ServerProcess) -> Iterator[httpx.Client]:
    with shared_server.client() as client:
        yield client
