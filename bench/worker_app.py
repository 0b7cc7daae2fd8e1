"""Processors for `bench/workers.py`, run by real `rotor worker` processes (cwd: bench/)."""

from __future__ import annotations

import os
import time
from typing import Any


async def noop(job: Any) -> None:
    """Does nothing: the figure is the queue's overhead per job."""


async def stamp(job: Any) -> None:
    """Notes when the job reached the worker (`<job id> <epoch ms>` lines in $BENCH_STAMPS)."""
    with open(os.environ["BENCH_STAMPS"], "a") as out:
        out.write(f"{job.id} {time.time() * 1000:.3f}\n")
