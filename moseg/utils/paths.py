"""Checks of output folders, cheap enough to run before anything slow is imported."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def check_out_folder(out: Path, what: str = "--out") -> str | None:
    """Why ``out`` cannot be an output folder (a file, or a place that cannot be written:
    read-only file system, no permission), or None; cheap, so it runs before anything slow."""
    if out.exists() and not out.is_dir():
        return f"{what} {out}: exists and is not a folder"
    probe = out
    while not probe.exists():  # the folder that would hold it
        probe = probe.parent
    if not probe.is_dir():
        return f"{what} {out}: {probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{what} {out}: cannot write into {probe} (no permission)"
    try:  # a read-only mount passes os.access for root; try it
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as e:
        why = "read-only file system" if e.errno == errno.EROFS else e.strerror
        return f"{what} {out}: cannot write into {probe} ({why})"
    return None
