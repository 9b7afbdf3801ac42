"""Files and directories keyrelease creates: readable by the user it runs as, and nobody else.

The modes are given to ``mkdir``/``open`` themselves, so no other user can open a file in the
moment between creating it and tightening it, and the process's umask can only make them
stricter. What already exists is left as it is (an operator may have chosen its mode).
"""

from __future__ import annotations

import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> None:
    """Create ``path`` (mode 0700) unless it exists; missing parents get the usual mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIRECTORY_MODE)
    except FileExistsError:
        pass


def private_file(path: Path) -> None:
    """Create ``path``, empty and mode 0600, unless it exists; its directory is created by
    :func:`private_directory`. An empty file is a valid empty SQLite database, and SQLite gives
    the database's ``-wal`` and ``-shm`` files the database file's mode."""
    private_directory(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
