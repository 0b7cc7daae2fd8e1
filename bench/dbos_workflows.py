"""DBOS Transact running the workflows benchmark's 3-step workflow (run by bench/workflows.py, not alone).

    <dbos venv>/bin/python bench/dbos_workflows.py DB_PATH RUNS SLEEP_S MODE

The workflow is the one rotor-lite runs: a step, a durable `DBOS.sleep(SLEEP_S)`, a step. DBOS
checkpoints each of the three (the sleep is a step of its own), on SQLite at DB_PATH. MODE `sync`
launches RUNS workflows at once with `DBOS.start_workflow` (a thread each, as DBOS's docs do);
`async` with `DBOS.start_workflow_async` on one event loop. First one workflow runs alone (warm-up
and the sequential figure, with a 0 s sleep), then the RUNS. Prints one JSON line:
`{"runs", "seconds", "sequential_ms", "launch_s"}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

from dbos import DBOS, DBOSConfig


@DBOS.step()
def work(n: int) -> int:
    return n + 1


@DBOS.workflow()
def three_steps(sleep_s: float) -> int:
    first = work(0)
    DBOS.sleep(sleep_s)
    return work(first)


@DBOS.step()
async def work_async(n: int) -> int:
    return n + 1


@DBOS.workflow()
async def three_steps_async(sleep_s: float) -> int:
    first = await work_async(0)
    await DBOS.sleep_async(sleep_s)
    return await work_async(first)


def run_sync(runs: int, sleep_s: float) -> tuple[float, float]:
    started = time.perf_counter()
    handles = [DBOS.start_workflow(three_steps, sleep_s) for _ in range(runs)]
    launched = time.perf_counter() - started
    results = [handle.get_result() for handle in handles]
    assert results == [2] * runs, results[:5]
    return time.perf_counter() - started, launched


async def run_async(runs: int, sleep_s: float) -> tuple[float, float]:
    started = time.perf_counter()
    handles = [await DBOS.start_workflow_async(three_steps_async, sleep_s) for _ in range(runs)]
    launched = time.perf_counter() - started
    results = await asyncio.gather(*(handle.get_result() for handle in handles))
    assert list(results) == [2] * runs, results[:5]
    return time.perf_counter() - started, launched


def main() -> None:
    db_path, runs, sleep_s, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    logging.getLogger("dbos").setLevel(logging.WARNING)
    config: DBOSConfig = {"name": "rotor-bench", "system_database_url": f"sqlite:///{db_path}", "log_level": "WARNING"}
    DBOS(config=config)
    DBOS.launch()
    try:
        one = time.perf_counter()
        assert three_steps(0) == 2
        sequential_ms = (time.perf_counter() - one) * 1000
        if mode == "sync":
            seconds, launched = run_sync(runs, sleep_s)
        else:
            seconds, launched = asyncio.run(run_async(runs, sleep_s))
    finally:
        DBOS.destroy()
    print(json.dumps({"runs": runs, "seconds": seconds, "sequential_ms": sequential_ms, "launch_s": launched}))


if __name__ == "__main__":
    main()
