"""The data directory and its files (database, WAL, master key, lock) are readable by their owner only."""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["make_data_dir", "node_id", "open_private", "tighten"]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
log = logging.getLogger("rotor_lite.files")


def make_data_dir(path: Path) -> None:
    """Create the data directory owner-only; one that exists is left as its owner set it."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)


def open_private(path: Path, flags: int) -> int:
    """A descriptor of `path` opened with `flags`, the file created, or tightened, owner-only."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)  # the umask may have taken more; an older file may allow more
    return fd


def tighten(path: Path) -> None:
    """Make an existing file owner-only (older versions created them readable by everyone)."""
    try:
        path.chmod(PRIVATE_FILE)
    except FileNotFoundError:
        pass
    except PermissionError:
        log.warning("cannot make %s readable by its owner only: it belongs to another user", path)


def node_id(data_dir: Path) -> str:
    """This node's id, made once and kept in the data directory: it survives restarts, so a node
    sharing a database with others can tell the leases it held before a crash from theirs."""
    path = data_dir / "node.id"
    try:
        known = path.read_text().strip()
    except FileNotFoundError:
        pass
    else:
        tighten(path)  # as for the database's files: one an older version left readable is made owner-only
        return known
    make_data_dir(data_dir)
    made = os.urandom(8).hex()
    fd = open_private(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as handle:
        handle.write(made + "\n")
    return made
