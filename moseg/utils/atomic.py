"""Atomic file writes: write to a hidden temporary file in the target folder, then rename.

A reader never sees a half-written file under the final name: either the old file (or none) is
there, or the complete new one. A writer killed mid-way leaves only a
``.<name>.<host>-<pid>.<random>.tmp`` file, which no glob for the real suffix matches. Its name
says who wrote it, so :func:`remove_stale_temps` removes only the temporary files of writers
that are gone (a process of this host that no longer runs), never another live run's.

The final file gets the permissions a plain ``open()`` would give it: those of the file it
replaces, else ``0o666`` minus the umask (``mkstemp`` alone would leave every output ``0600``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
_OWNER = re.compile(r"\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def owner_tag() -> str:
    """``<host>-<pid>`` of this process, as temporary names carry it."""
    return f"{_HOST}-{os.getpid()}"


def current_umask() -> int:
    """The process umask (read from /proc where possible; ``os.umask`` sets it, so elsewhere
    it is set and restored at once)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{owner_tag()}.", suffix=TMP_SUFFIX, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, _final_mode(path))
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def stale_temp(path: Path) -> bool:
    """Whether ``path`` is a temporary file of a writer that is gone: one of this host whose
    process no longer runs. Other hosts' files (a shared file system) and names without an
    owner are never judged stale."""
    m = _OWNER.search(path.name)
    if m is None or m["host"] != _HOST:
        return False
    pid = int(m["pid"])
    return pid != os.getpid() and not pid_alive(pid)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder`` (:func:`stale_temp`);
    a live run's are kept. Returns what was removed."""
    removed = []
    for p in Path(folder).glob(f".*{TMP_SUFFIX}"):
        if not stale_temp(p):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not all file systems allow opening a directory.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


LOCK_NAME = ".moseg.lock"


class FolderLockedError(RuntimeError):
    """Another live moseg process writes into the folder; the message names it."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, wait_s: float = 0.0, poll_s: float = 2.0):
    """Hold ``folder/.moseg.lock`` (this process's host and pid) while writing into ``folder``.

    A lock whose owner is gone (this host, process no longer running) is stale and taken over.
    A live owner's lock (or another host's, whose liveness cannot be checked) makes this wait up
    to ``wait_s`` seconds, then raise :class:`FolderLockedError` naming the owner and the lock
    file (delete it by hand only if that process is really gone)."""
    import json
    import time

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"host": _HOST, "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    deadline = time.monotonic() + max(0.0, wait_s)
    waited = False
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~current_umask())
        except FileExistsError:
            try:
                owner = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                owner = {}
            pid = int(owner.get("pid", -1))
            if owner.get("host") == _HOST and not pid_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # stale: its owner is gone
                continue
            if not waited and wait_s > 0:
                waited = True
                logging.getLogger(__name__).warning(
                    "%s: another moseg run writes into it (pid %s on %s); waiting up to %.0f s",
                    folder,
                    owner.get("pid"),
                    owner.get("host"),
                    wait_s,
                )
            if time.monotonic() >= deadline:
                raise FolderLockedError(
                    f"{folder}: another moseg run writes into it (pid {owner.get('pid')} on "
                    f"{owner.get('host')}, since {owner.get('since')}); wait for it, or use "
                    f"another output folder (if that run is gone, delete {path})"
                ) from None
            time.sleep(poll_s)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
