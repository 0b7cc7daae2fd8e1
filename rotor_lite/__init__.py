"""rotor-lite: Rotor's durable job-queue API as one self-hosted process on SQLite."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
