"""One run at a time per output folder: a lock file naming the process that writes there.

``with output_lock(folder, "geoseg predict"):`` creates the folder if needed and holds
``FOLDER/.geoseg.lock`` for the run; a second run into the same folder stops at once with
:class:`~geoseg.errors.OutputLockedError` naming the holder (command, process id, host, start
time). The lock is an advisory ``flock`` on that file, which the kernel drops when its process
ends however it ends: a lock file left by a killed run is therefore stale, and the next run
takes it over (with a warning naming the run that died). Where ``flock`` is not available the
holder's process id is checked instead (same host only). The file is deleted on release, and
a folder the lock created is removed again when the run left it empty.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from geoseg.errors import OutputLockedError
from geoseg.io.atomic import LOCK_FILE

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: process-id check only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("geoseg")

__all__ = ["LOCK_FILE", "LockHolder", "OutputLock", "acquire_lock", "output_lock"]


@dataclass(frozen=True)
class LockHolder:
    """What a lock file says about the run holding it (fields empty when it says nothing)."""

    pid: int = 0
    host: str = ""
    command: str = ""
    started: str = ""

    def describe(self) -> str:
        """``geoseg predict, pid 1234 on host node7, started 2024-05-01 10:00:00``."""
        if not self.pid:
            return "a run that has not recorded itself yet"
        parts = [self.command or "a geoseg run", f"pid {self.pid} on host {self.host or '?'}"]
        if self.started:
            parts.append(f"started {self.started}")
        return ", ".join(parts)

    def alive(self) -> bool:
        """True unless the holder is on this host and its process is gone (other hosts: assumed alive)."""
        if not self.pid:
            return False
        if self.host and self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            return True
        return True


class OutputLock:
    """A held folder lock (:func:`acquire_lock`).

    Attributes:
        folder: the locked folder.
        path: its lock file.
        stale: the dead run whose lock this one took over, if any.
        created: :func:`output_lock` created the folder.
    """

    def __init__(self, folder: Path, fd: int, stale: LockHolder | None) -> None:
        self.folder = folder
        self.path = folder / LOCK_FILE
        self.stale = stale
        self.created = False
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Delete the lock file (while still holding it) and let go; a second call does nothing."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):  # not replaced after a run removed the folder under us
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)  # drops the flock

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_lock(folder: str | os.PathLike, command: str) -> OutputLock:
    """Take the lock of an existing ``folder`` for ``command`` or fail at once.

    Args:
        folder: the output folder (must exist).
        command: what holds it, for the message another run prints (``"geoseg tile"``).

    Raises:
        OutputLockedError: a live run holds the folder; the message names it.
    """
    folder = Path(folder)
    path = folder / LOCK_FILE
    for _ in range(20):  # the file may be replaced between our open and our lock: open it again
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            previous = _read_holder(fd)
            if not _try_lock(fd, previous):
                holder = _read_holder(fd) if not previous.pid else previous  # it may have just written it
                raise OutputLockedError(
                    f"output folder {folder} is in use by another run ({holder.describe()}); wait for it to "
                    "finish or choose another --out (if that process is gone, delete "
                    f"{path})")
            if not _same_file(fd, path):
                os.close(fd)
                continue
            _write_holder(fd, command)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        stale = previous if previous.pid else None
        if stale is not None:
            log.warning("%s: taking over the lock of a run that ended without releasing it (%s)",
                        folder, stale.describe())
        return OutputLock(folder, fd, stale)
    raise OutputLockedError(f"output folder {folder}: could not take its lock {path} (replaced again and again)")


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, command: str) -> Iterator[OutputLock]:
    """Create ``folder`` if needed, hold its lock for the block; remove the folder again if this created it
    and the run left nothing in it.

    Raises:
        OutputLockedError: see :func:`acquire_lock`.
        OSError: the folder cannot be created (check it first with
            :func:`geoseg.io.atomic.check_writable`).
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        lock = acquire_lock(folder, command)
        lock.created = created
    except BaseException:
        if created:
            _remove_if_empty(folder)
        raise
    try:
        yield lock
    finally:
        lock.release()
        if created:
            _remove_if_empty(folder)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()  # fails unless empty


def _try_lock(fd: int, previous: LockHolder) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as exc:  # a filesystem without flock: fall back to the process-id check
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
    return not previous.alive()


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _read_holder(fd: int) -> LockHolder:
    try:
        raw = os.pread(fd, 4096, 0)
        doc = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        return LockHolder(pid=int(doc.get("pid", 0)), host=str(doc.get("host", "")),
                          command=str(doc.get("command", "")), started=str(doc.get("started", "")))
    except (OSError, ValueError, AttributeError, TypeError):
        return LockHolder()


def _write_holder(fd: int, command: str) -> None:
    doc = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
           "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    data = (json.dumps(doc) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
