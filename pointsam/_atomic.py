r"""One atomic writer for every file pointsam writes.

A file is written as a temporary file in the target's folder (hidden:
``.NAME.XXXXXXXX.tmp``), flushed, ``fsync``\ ed and renamed over the target
(``os.replace``, atomic on POSIX), so the target holds either its previous
content or the complete new one, never a half-written file. On any error the
temporary file is removed.

Running out of space (``ENOSPC``, ``EDQUOT``, or torch's "write failed" /
"unexpected pos" errors caused by one) becomes :class:`OutOfSpaceError`, an
``OSError`` whose message names the file and says whether a previous version is
kept, e.g. ``no space left on device while writing runs/a/pred.ply (the
previous pred.ply is kept)``; the command line prints it as one ``pointsam:
error:`` line.

- :func:`atomic_write`: a context manager yielding an open file object.
- :func:`atomic_write_bytes` / :func:`atomic_write_text`: a whole file at once.
- :func:`atomic_path`: a context manager yielding a temporary *path* (same
  folder, same suffix), for writers that take only a path (``onnx.save``,
  Open3D's ``write_point_cloud``); renamed over the target on success.

This module sits below every layer (it imports only the standard library), so
``ops`` up to ``cli`` may use it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["OutOfSpaceError", "atomic_write", "atomic_write_bytes",
           "atomic_write_text", "atomic_path", "is_out_of_space"]

_FULL = (errno.ENOSPC, errno.EDQUOT)


class OutOfSpaceError(OSError):
    """The disk (or quota) filled up while writing a file; the previous file is kept.

    ``errno`` is ``ENOSPC`` or ``EDQUOT``, ``filename`` the target, ``kept``
    whether a previous version of it exists (untouched).
    """

    def __init__(self, path: str | os.PathLike[str], kept: bool, *,
                 code: int = errno.ENOSPC, hint: str | None = None) -> None:
        name = Path(path).name
        what = "disk quota exceeded" if code == errno.EDQUOT else "no space left on device"
        state = f"the previous {name} is kept" if kept else f"no previous {name} existed"
        self.message = f"{what} while writing {path} ({state})" + (
            f"; {hint}" if hint else "")
        super().__init__(code, self.message, str(path))
        self.kept = kept

    def __str__(self) -> str:
        return self.message


def _chain(e: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def is_out_of_space(e: BaseException) -> int | None:
    """``ENOSPC`` / ``EDQUOT`` when ``e`` (or an exception it was raised from or
    during) says the disk is full, else ``None``.

    torch reports a failed write of ``torch.save`` to a path as ``RuntimeError:
    ... file write failed``, and one to a Python file object as ``RuntimeError:
    ... unexpected pos`` raised while handling the ``OSError(ENOSPC)``.

    Example:
        >>> is_out_of_space(OSError(errno.ENOSPC, "No space left on device"))
        28
        >>> is_out_of_space(OSError(errno.EACCES, "Permission denied")) is None
        True
    """
    for x in _chain(e):
        if isinstance(x, OSError) and x.errno in _FULL:
            return x.errno
        if isinstance(x, RuntimeError) and "write failed" in str(x):
            return errno.ENOSPC
    return None


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (setting
    it to read it back would briefly affect files other threads create)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _target(path: str | os.PathLike[str]) -> Path:
    """The file to replace: a symlink's target (renaming over the link would
    replace the link itself)."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _unlink(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _raise(e: BaseException, path: Path, hint: str | None) -> None:
    """Re-raise ``e``: as :class:`OutOfSpaceError` when the disk is full."""
    code = is_out_of_space(e)
    if code is not None:
        raise OutOfSpaceError(path, path.exists(), code=code, hint=hint) from None
    raise e


def _mkstemp(path: Path, suffix: str, hint: str | None) -> tuple[int, str]:
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"cannot write {path}: the folder "
                                f"{path.parent} does not exist", str(path))
    try:
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix,
                                dir=path.parent)
    except OSError as e:  # no space for an inode, no permission: name the target
        if is_out_of_space(e):
            _raise(e, path, hint)
        raise type(e)(e.errno, e.strerror, str(path)) from None


def _commit(tmp: str, path: Path) -> None:
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; honour the umask
    os.replace(tmp, path)


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", *,
                 encoding: str | None = None, newline: str | None = None,
                 hint: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success it replaces ``path``.

    The folder must exist. Everything written goes to a hidden temporary file
    in the same folder, which is flushed, ``fsync``\\ ed and renamed over
    ``path`` when the block ends without an error; on any error it is removed
    and ``path`` keeps its previous content.

    Args:
        path: The file to write.
        mode: ``"wb"`` (default) or ``"w"`` (text).
        encoding: Text mode's encoding. (default: ``"utf-8"``)
        newline: Text mode's ``newline`` (``""`` for the ``csv`` module).
        hint: What to do, appended to the out-of-space message.

    Raises:
        OutOfSpaceError: the disk or quota filled up (the message names
            ``path`` and says whether its previous version is kept).
        FileNotFoundError: the folder does not exist.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_write(p, "w") as f:
        ...     _ = f.write("hello\\n")
        >>> p.read_text()
        'hello\\n'
    """
    if mode not in ("wb", "w", "wt"):
        raise ValueError(f"atomic_write writes a whole new file: mode 'wb' or 'w', "
                         f"not {mode!r}")
    path = _target(path)
    fd, tmp = _mkstemp(path, ".tmp", hint)
    try:
        if "b" in mode:
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _commit(tmp, path)
    except BaseException as e:
        _unlink(tmp)
        _raise(e, path, hint)
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *,
                       hint: str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path, "wb", hint=hint) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *,
                      encoding: str = "utf-8", hint: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`).

    Example:
        >>> import tempfile
        >>> p = atomic_write_text(Path(tempfile.mkdtemp()) / "b.json", "{}\\n")
        >>> p.read_text()
        '{}\\n'
    """
    with atomic_write(path, "w", encoding=encoding, hint=hint) as f:
        f.write(text)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *,
                hint: str | None = None) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix) for writers that take a
    path; on success the file written there is ``fsync``\\ ed and replaces
    ``path``, on any error it is removed.

    Use it only for writers that report a failed write as a Python exception:
    ``torch.export.save`` to a path aborts the process on a full disk (save
    into ``io.BytesIO`` and :func:`atomic_write_bytes` instead).

    Raises:
        OutOfSpaceError: as :func:`atomic_write`.
        FileNotFoundError: the folder does not exist, or the writer wrote nothing.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "c.txt"
        >>> with atomic_path(p) as tmp:
        ...     _ = tmp.write_text("x")
        >>> p.read_text(), tmp.exists()
        ('x', False)
    """
    path = _target(path)
    fd, tmp = _mkstemp(path, f".tmp{path.suffix}", hint)
    os.close(fd)
    try:
        yield Path(tmp)
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, f"nothing was written to {path}",
                                    str(path)) from None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _commit(tmp, path)
    except BaseException as e:
        _unlink(tmp)
        _raise(e, path, hint)
    _fsync_dir(path.parent)
