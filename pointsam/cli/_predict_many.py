r"""``pointsam predict SOURCE DIR_OR_GLOB --out OUT_DIR``: one output per input.

The batch form of :mod:`pointsam.cli.predict`. The inputs are the cloud files
a folder holds (not recursive, sorted; the suffixes :func:`~pointsam.data.read_cloud`
reads, dotfiles left out) or the sorted matches of a glob the user quotes
(``'scans/**/*.bin'``, recursive); an empty match is an error. Each input
``NAME.SUF`` gives ``OUT_DIR/NAME.ply`` (plus ``NAME.json`` for a
classification), written by the same code as the one-file form
(:func:`pointsam.cli._predict_one.predict_file`, atomic writes; a classification's
JSON is written before its PLY, so an existing PLY marks a finished input).

- An input whose ``.ply`` exists is skipped (the count is printed) unless
  ``--overwrite``.
- A bad file does not stop the run: its one-line error is kept, the rest go
  on, and the failures are listed at the end; the exit code is 1 when any
  failed. A full disk (:class:`~pointsam._atomic.OutOfSpaceError`) stops the
  run.
- ``--jobs 1`` (default) runs in this process, reading the next file in a
  thread while the current one is predicted. ``--jobs N`` starts N worker
  processes (``spawn``); each loads the model once and uses
  ``max(1, cores // N)`` torch threads, so N workers do not oversubscribe the
  cores; the workers overlap reading and computing among themselves.
- A tqdm bar on stderr shows files done, points per second and the time left;
  warnings are printed above it as ``pointsam: warning: FILE: ...``.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["CLOUD_SUFFIXES", "is_many", "expand_inputs", "output_dir", "run_many"]

#: the suffixes :func:`~pointsam.data.read_cloud` reads (a folder's cloud files)
CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".txt", ".pts", ".csv", ".npy", ".bin",
                  ".las", ".laz")

_GLOB_CHARS = set("*?[")


def _is_glob(text: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in text)


def is_many(file: str, out: str) -> bool:
    """Whether ``predict FILE --out OUT`` is the batch form: FILE is a folder or
    a glob that is not an existing file, or OUT is an existing folder."""
    p = Path(file)
    if p.is_dir():
        return True
    if p.is_file():
        return Path(out).is_dir()
    return _is_glob(file)


def expand_inputs(source: str) -> list[Path]:
    """The cloud files of a folder (sorted, suffixes :data:`CLOUD_SUFFIXES`) or
    the files a glob matches (sorted); one existing file is itself.

    Raises:
        ValueError: nothing matched (the message says what was looked for).
    """
    p = Path(source)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file()
                       and not f.name.startswith(".")
                       and f.suffix.lower() in CLOUD_SUFFIXES)
        if not files:
            raise ValueError(f"{source}: the folder holds no cloud files (suffixes "
                             + " ".join(CLOUD_SUFFIXES) + ")")
        return files
    if p.is_file():
        return [p]
    files = sorted(Path(f) for f in glob.glob(source, recursive=True)
                   if Path(f).is_file())
    if not files:
        raise ValueError(f"{source}: no file matches this pattern")
    return files


def output_dir(out: str) -> Path:
    """``--out`` of the batch form: a folder (made when missing).

    Raises:
        ValueError: ``out`` is an existing file or a name ending in ``.ply``.
    """
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ValueError(f"--out {out} is a file; a folder or glob input writes "
                         "one output per file: give a folder for --out")
    if not p.exists() and p.suffix.lower() == ".ply":
        raise ValueError(f"--out {out} names a .ply file; a folder or glob input "
                         "writes one output per file: give a folder for --out")
    p.mkdir(parents=True, exist_ok=True)
    return p


def _plan(files: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """``(input, output .ply)`` pairs; refuses two inputs of one stem and an
    output that would overwrite an input."""
    pairs = [(f, out_dir / (f.stem + ".ply")) for f in files]
    seen: dict[Path, Path] = {}
    inputs = {f.resolve() for f in files}
    for f, o in pairs:
        if o in seen:
            raise ValueError(f"{seen[o]} and {f} would both be written to {o}: "
                             "give inputs of distinct names (or one folder at a time)")
        seen[o] = f
        if o.resolve() in inputs or o.with_suffix(".json").resolve() in inputs:
            raise ValueError(f"writing {o} would overwrite the input {o}: give "
                             "--out a folder other than the inputs'")
    return pairs


# -- one file: the same in this process and in a worker ---------------------------

_WORKER: dict[str, Any] = {}


def _predict(args: argparse.Namespace, src: Any, path: Path, out: Path,
             read: Callable[[], Any] | None = None) -> tuple[int, str | None, list[str]]:
    """``(points, error or None, warnings)`` of one input (``read()`` gives its
    cloud when it was read ahead); a full disk raises."""
    from pointsam._atomic import OutOfSpaceError
    from pointsam.engine._guards import one_line

    from ._predict_one import predict_file

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            data = read() if read is not None else None
            n = predict_file(args, src, path, out, data=data, say=None)
            err = None
        except OutOfSpaceError:
            raise
        except Exception as e:  # one bad file does not stop the others
            n, err = 0, one_line(e) or type(e).__name__
            if err.startswith(f"{path}: "):  # the listing names the file already
                err = err[len(f"{path}: "):]
    return n, err, [f"{path}: {w.message}" for w in caught]


def _worker_init(ns: dict[str, Any], threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set
        pass
    from ._predict_one import load_source

    args = argparse.Namespace(**ns)
    _WORKER["args"], _WORKER["src"] = args, load_source(args)


def _worker_predict(path: str, out: str) -> tuple[int, str | None, list[str]]:
    return _predict(_WORKER["args"], _WORKER["src"], Path(path), Path(out))


def _in_process(args: argparse.Namespace, src: Any, pairs: list[tuple[Path, Path]]
                ) -> Iterator[tuple[int, int, str | None, list[str]]]:
    """Predict ``pairs`` in order, reading the next file in a thread meanwhile."""
    from pointsam.data import read_cloud

    def read(path: Path) -> Any:
        return read_cloud(path, bin_columns=args.bin_columns)

    with ThreadPoolExecutor(max_workers=1) as pool:
        nxt: Future[Any] | None = pool.submit(read, pairs[0][0]) if pairs else None
        for i, (path, out) in enumerate(pairs):
            assert nxt is not None
            cur = nxt
            nxt = pool.submit(read, pairs[i + 1][0]) if i + 1 < len(pairs) else None
            yield (i, *_predict(args, src, path, out, read=cur.result))


def _in_workers(args: argparse.Namespace, pairs: list[tuple[Path, Path]], jobs: int
                ) -> Iterator[tuple[int, int, str | None, list[str]]]:
    """Predict ``pairs`` in ``jobs`` spawned processes, in completion order."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    ns = {k: v for k, v in vars(args).items() if k != "func"}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init,
                             initargs=(ns, max(1, cores // jobs))) as pool:
        futs = {pool.submit(_worker_predict, str(p), str(o)): i
                for i, (p, o) in enumerate(pairs)}
        try:
            for f in as_completed(futs):
                yield (futs[f], *f.result())
        except BaseException:
            for f in futs:
                f.cancel()
            raise


def run_many(args: argparse.Namespace,
             load: Callable[[argparse.Namespace], Any]) -> int:
    """The batch form of ``pointsam predict``; 1 when any input failed."""
    from tqdm import tqdm

    jobs = int(getattr(args, "jobs", 1) or 1)
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    out_dir = output_dir(args.out)
    pairs = _plan(expand_inputs(args.file), out_dir)
    # the source is loaded here even for --jobs N: a wrong checkpoint or a missing
    # --category is one error before any worker starts
    src = load(args)
    todo = pairs if args.overwrite else [(p, o) for p, o in pairs if not o.exists()]
    skipped = len(pairs) - len(todo)
    print(f"{len(pairs)} input file{'s' if len(pairs) != 1 else ''} -> {out_dir}"
          + (f"; skipping {skipped} whose output exists (--overwrite redoes them)"
             if skipped else ""))
    if jobs > 1:
        del src  # each worker loads its own
        results = _in_workers(args, todo, min(jobs, max(1, len(todo))))
    else:
        results = _in_process(args, src, todo)
    failed: dict[int, str] = {}
    points, t0 = 0, time.perf_counter()
    with tqdm(total=len(todo), unit="file", file=sys.stderr, dynamic_ncols=True,
              disable=not todo) as bar:
        for i, n, err, warns in results:
            for w in warns:
                bar.write(f"pointsam: warning: {w}", file=sys.stderr)
            if err is not None:
                failed[i] = err
                bar.write(f"pointsam: failed: {todo[i][0]}: {err}", file=sys.stderr)
            points += n
            bar.set_postfix_str(
                f"{points / max(time.perf_counter() - t0, 1e-9):,.0f} points/s",
                refresh=False)
            bar.update(1)
    done = len(todo) - len(failed)
    print(f"wrote {done} output{'s' if done != 1 else ''} to {out_dir}"
          + (f", skipped {skipped}" if skipped else "")
          + (f", {len(failed)} failed" if failed else ""))
    if failed:
        print(f"pointsam: {len(failed)} of {len(todo)} file"
              f"{'s' if len(todo) != 1 else ''} failed:", file=sys.stderr)
        for i in sorted(failed):
            print(f"  {todo[i][0]}: {failed[i]}", file=sys.stderr)
        return 1
    return 0
