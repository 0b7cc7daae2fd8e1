from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Receiver, ServerProcess


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rec:
        yield rec


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module marked `both_delivery_paths` runs each test against servers that deliver in-process and
    through two delivery helpers."""
    if "delivery_processes" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_delivery_paths"):
        metafunc.parametrize("delivery_processes", ["0", "2"], indirect=True, scope="module",
                             ids=["in-process", "2-helpers"])


@pytest.fixture(scope="module")
def delivery_processes(request: pytest.FixtureRequest) -> dict[str, str]:
    """The servers' `[delivery] processes` as environment (none: the default, `auto`)."""
    processes = getattr(request, "param", None)
    return {} if processes is None else {"ROTOR_DELIVERY_PROCESSES": processes}


@pytest.fixture
def make_server(tmp_path: Path, delivery_processes: dict[str, str]) -> Iterator[Callable[..., ServerProcess]]:
    """Start `rotor-lite serve` subprocesses (extra env as keyword arguments); all are killed at teardown."""
    started: list[ServerProcess] = []

    def make(data_dir: Path | None = None, **env: str) -> ServerProcess:
        server = ServerProcess(data_dir=data_dir or tmp_path / f"data{len(started)}", env={**delivery_processes, **env})
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def server(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    return make_server()
