r"""Run directories: writability up front, one run at a time, no silent clobbering.

- :func:`check_writable`: ``train.out_dir`` is (or can become) a folder that
  takes files; a path that is an existing file, a read-only or immutable folder
  is a :class:`RunDirError` before anything is built, not an ``OSError`` deep
  in the first save.
- :func:`acquire_lock`: an OS file lock (``fcntl.flock`` on ``OUT_DIR/.lock``,
  which holds the owner's process id). The kernel drops it when the process
  exits, however it exits (``kill -9`` included), so a crashed run never leaves
  a stale lock. A second process that wants the same folder gets
  ``... is in use by process N``. Within one process the lock is re-entrant
  (counted), so a resumed :class:`~pointsam.engine.trainer.Trainer` in the same
  interpreter as the interrupted one works.
- :func:`check_fresh`: a new run (no ``resume``) into a folder that holds a
  previous run's outputs is refused unless ``overwrite``; with ``overwrite`` the
  previous outputs are removed first, so no stale ``best.pt`` survives.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> lock = acquire_lock(d)
    >>> lock.release()
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RunDirError", "RunLock", "RUN_FILES", "check_writable", "acquire_lock",
           "lock_holder", "check_fresh"]

#: The outputs of a run (what ``check_fresh`` looks for and ``overwrite`` removes).
RUN_FILES = ("best.pt", "last.pt", "metrics.csv", "summary.json", "tb")
LOCK_NAME = ".lock"


class RunDirError(RuntimeError):
    """The run directory cannot be used: not writable, in use, or holding a run."""


def check_writable(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` if needed and check that a file can be written in it.

    Raises:
        RunDirError: the path is an existing file, or the folder cannot be
            created or written (read-only, immutable, no permission).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"train.out_dir {out} exists and is not a folder; "
                          "give a folder path (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RunDirError(f"train.out_dir {out} is not writable: "
                          f"{e.strerror or e}") from None
    return out


class RunLock:
    """A held lock on one run directory; :meth:`release` gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._released = False

    def release(self) -> None:
        """Release once (further calls do nothing)."""
        if not self._released:
            self._released = True
            _release(self.path)

    def __del__(self) -> None:  # a forgotten lock goes with its owner
        try:
            self.release()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


# realpath of the lock file -> [fd, count]: re-entrant within one process
_HELD: dict[str, list[int]] = {}
_MUTEX = threading.Lock()


def _owner(lock_file: Path) -> str:
    try:
        pid = lock_file.read_text().strip()
    except OSError:
        pid = ""
    return pid if pid.isdigit() else "unknown"


def acquire_lock(out_dir: str | os.PathLike[str]) -> RunLock:
    """Take the OS lock on ``out_dir`` (created if missing) for this process.

    Raises:
        RunDirError: another process holds it (the message names its id).
    """
    import fcntl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock_file = out / LOCK_NAME
    key = os.path.realpath(lock_file)
    with _MUTEX:
        if key in _HELD:
            _HELD[key][1] += 1
            return RunLock(Path(key))
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirError(
                    f"{out} is in use by process {_owner(lock_file)} (another "
                    "pointsam run holds its lock); wait for it to finish or "
                    "choose another train.out_dir") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[key] = [fd, 1]
    return RunLock(Path(key))


def lock_holder(out_dir: str | os.PathLike[str]) -> str | None:
    """Who holds the lock on ``out_dir``: the process id its lock file names
    (``"unknown"`` when unreadable), or None when nobody does.

    A probe, for a caller that wants to skip a busy folder rather than fail on
    it (``pointsam sweep``): a shared non-blocking ``flock`` taken and dropped
    at once, so a run acquiring the folder at that very instant can still be
    refused; :func:`acquire_lock` stays the authority.
    """
    import fcntl

    lock_file = Path(out_dir) / LOCK_NAME
    with _MUTEX:
        if os.path.realpath(lock_file) in _HELD:
            return str(os.getpid())
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:  # no lock file: never locked
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return _owner(lock_file)
        raise
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return None


def _release(lock_file: Path) -> None:
    import fcntl

    key = str(lock_file)
    with _MUTEX:
        held = _HELD.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[key]
        fd = held[0]
    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def check_fresh(out_dir: str | os.PathLike[str], *, resume: bool,
                overwrite: bool, files: Sequence[str] = RUN_FILES) -> list[str]:
    """Refuse to start a new run over a previous one; ``overwrite`` clears it.

    ``files`` are the outputs that make a run (default :data:`RUN_FILES`, the
    trainer's; the LiDAR recipe passes its own).

    Returns:
        The previous run's outputs that were found (and, with ``overwrite``,
        removed).

    Raises:
        RunDirError: outputs of a previous run are there and neither ``resume``
            nor ``overwrite`` is set (the message lists them).
    """
    out = Path(out_dir)
    found = [f for f in files if (out / f).exists()]
    if resume or not found:
        return found
    if not overwrite:
        raise RunDirError(
            f"{out} already holds a run ({', '.join(found)}); continue it with "
            "--resume, replace it with --overwrite, or choose another "
            "train.out_dir")
    for f in found:
        p = out / f
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return found
