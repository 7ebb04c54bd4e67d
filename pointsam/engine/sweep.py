r"""Multi-seed sweeps: every (config, seed) in its own process, resumable.

``pointsam sweep A.yaml B.yaml --seeds 0 1 2 --jobs 2 --out DIR`` trains each
config with each seed as ``python -m pointsam train CONFIG --set train.seed=S
--set train.out_dir=DIR/runs/<config stem>/seed<S> ...`` (one torch thread per
process: ``OMP_NUM_THREADS=1`` and ``train.num_threads=1``), at most ``--jobs``
at once, then writes the tables and the figure of
:mod:`~pointsam.engine.sweep_report` (``DIR/results.md``, ``results.csv``,
``results_seeds.csv``, ``results.png``).

- Everything is checked before the first run starts: each config loads with the
  ``--set`` overrides, its dataset, task and model can be built, all configs share
  one task, and a run folder left by an earlier sweep holds the same config.
- Resumable: a run whose ``summary.json`` is valid is skipped; a run with a
  ``last.pt`` but no summary (killed) restarts with ``--resume`` from its last
  epoch. Invoking the same sweep again therefore only finishes what is missing.
- Each finished run prints one progress line: the run, its test metrics, how
  many runs are left and an estimate of the time left (from the mean duration
  of the runs of the same config so far, divided over the free job slots).
- Per run, ``sweep_run.json`` records each attempt's process wall-clock and
  ``sweep.log`` its output; ``DIR/sweep.json`` records the sweep itself (so
  ``--report-only`` can re-aggregate without the config list).

LiDAR configs (``train/lidar/*.yaml``) are trainer configs like any other
(``data.name: lidar_frames``, ``train.steps``): their tables report test mIoU
and OA on every point of the test frames, with the step chosen on the
held-out region.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pointsam._atomic import atomic_write_text

from .checkpoint import RESUME_FREE
from .config import Config, config_diff, config_to_dict, load_config
from .rundir import lock_holder
from .sweep_report import fmt_duration, metrics_text, read_summary

__all__ = [
    "SweepError",
    "SweepRun",
    "plan_sweep",
    "check_plan",
    "run_sweep",
    "read_summary",
    "baseline_name",
]

#: Keys a finished or partial run may differ in from the planned config: they
#: do not change what the run computes (the trainer's resume list, less the
#: time budget, which changes what a finished run computed).
FREE_KEYS = RESUME_FREE - {"train.time_budget_s"}


class SweepError(ValueError):
    """A sweep that cannot start: bad configs, seeds or folders (nothing ran)."""


@dataclass(frozen=True)
class SweepRun:
    """One (config, seed) of a sweep.

    Attributes:
        name: The config's name in the tables (its file stem).
        config: The config file.
        seed: ``train.seed`` of the run.
        out_dir: ``DIR/runs/<name>/seed<seed>``.
        overrides: The sweep's ``--set key=value`` strings.
    """

    name: str
    config: Path
    seed: int
    out_dir: Path
    overrides: tuple[str, ...] = ()

    @property
    def run_overrides(self) -> list[str]:
        """The sweep's overrides plus the run's seed, folder, one thread and no
        progress bar."""
        return [*self.overrides, f"train.seed={self.seed}",
                f"train.out_dir={self.out_dir}", "train.num_threads=1",
                "train.progress=false"]

    def load(self) -> Config:
        """The run's config, exactly as its process will load it."""
        return load_config(self.config, self.run_overrides)

    def config_dict(self) -> dict[str, Any]:
        """:meth:`load` as a nested dict (as a run's ``summary.json`` holds it)."""
        return config_to_dict(self.load())

    @property
    def summary_path(self) -> Path:
        return self.out_dir / "summary.json"

    def command(self, resume: bool = False) -> list[str]:
        """The child process's argv.

        A run that cannot resume (no ``last.pt``) starts over with
        ``--overwrite``: its folder belongs to this sweep, and what a failed
        attempt left there (``best.pt`` without ``last.pt``) is stale.
        """
        cmd = [sys.executable, "-m", "pointsam", "train", str(self.config)]
        for o in self.run_overrides:
            cmd += ["--set", o]
        return cmd + (["--resume"] if resume else ["--overwrite"])

    @property
    def label(self) -> str:
        return f"{self.name} seed {self.seed}"


def plan_sweep(configs: Sequence[str | Path], seeds: Sequence[int], out: str | Path,
               overrides: Sequence[str] = ()) -> list[SweepRun]:
    """The runs of a sweep, config-major, after checking names and seeds.

    Raises:
        SweepError: no config, no seed, a repeated or negative seed, or two
            configs with the same file stem.
    """
    if not configs:
        raise SweepError("no config given: pointsam sweep CONFIG [CONFIG ...]")
    if not seeds:
        raise SweepError("no seed given: --seeds 0 1 2")
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise SweepError(f"--seeds must be distinct and >= 0, got {list(seeds)}")
    for o in overrides:
        key = o.split("=", 1)[0].strip()
        if key in ("train.seed", "train.out_dir"):
            raise SweepError(f"--set {o}: the sweep sets {key} itself "
                             "(--seeds, --out)")
    names: dict[str, Path] = {}
    for c in configs:
        p = Path(c)
        if p.stem in names:
            raise SweepError(f"two configs are named {p.stem!r} ({names[p.stem]} "
                             f"and {p}): the tables name configs by file stem")
        names[p.stem] = p
    out = Path(out).resolve()
    return [SweepRun(name, p.resolve() if p.exists() else p, s,
                     out / "runs" / name / f"seed{s}", tuple(overrides))
            for name, p in names.items() for s in seeds]


def _build_check(cfg: Config) -> str:
    """Build the dataset, task and model of ``cfg`` (no training); its task."""
    from .builders import build_datasets, build_model, build_task

    sets = build_datasets(cfg)  # as the trainer: class counts of the carved train
    task = build_task(cfg, sets["train"])
    build_model(cfg, task)
    return task.name


def check_plan(runs: Sequence[SweepRun], *, build: bool = True) -> str:
    """Check every config of a plan before anything runs; return the shared task.

    Each config must load with the overrides (and, with ``build``, its datasets,
    task and model must build); all must share one task; a finished or partial run already in a
    run folder must hold the same config.

    Raises:
        SweepError: listing every problem found, not only the first.
    """
    problems: list[str] = []
    tasks: dict[str, str] = {}
    by_name: dict[str, SweepRun] = {}
    for r in runs:
        by_name.setdefault(r.name, r)
    for name, r in by_name.items():
        try:
            cfg = r.load()
            tasks[name] = _build_check(cfg) if build else (cfg.train.task or "?")
        except Exception as e:  # a config that does not load or build
            problems.append(f"{r.config}: {type(e).__name__}: {e}")
    if len(set(tasks.values()) - {"?"}) > 1:
        problems.append("the configs do not share one task ("
                        + ", ".join(f"{n}: {t}" for n, t in tasks.items())
                        + "); sweep each task separately")
    if not problems:
        for r in runs:
            problems += _folder_problems(r)
    if problems:
        raise SweepError(f"{len(problems)} problem(s); nothing was run:\n  "
                         + "\n  ".join(problems))
    return next(iter(tasks.values()), "?")


def _folder_problems(r: SweepRun) -> list[str]:
    """A run folder that holds another config's run."""
    old, free = None, set()
    s = read_summary(r.summary_path)
    if s is not None:
        old = s["config"]
    elif (r.out_dir / "last.pt").is_file():  # a resume may change the budget
        free = {"train.time_budget_s"}
        from .checkpoint import CheckpointError, load_checkpoint

        try:
            old = load_checkpoint(r.out_dir / "last.pt")["config"]
        except CheckpointError as e:
            return [f"{r.out_dir}: unreadable last.pt ({e}); delete it to restart"]
    if old is None:
        return []
    diff = [f"{k}: {a!r} there, {b!r} now"
            for k, a, b in config_diff(old, r.config_dict(), FREE_KEYS | free)]
    if not diff:
        return []
    return [f"{r.out_dir} holds a run of another config ({'; '.join(diff)}): "
            "use another --out, or delete that folder"]


@dataclass
class RunOutcome:
    """What a sweep invocation did with one run."""

    run: SweepRun
    status: str  # "skipped", "done", "failed" or "busy" (another process has it)
    resumed: bool = False
    wall_s: float = 0.0
    returncode: int | None = None
    summary: dict[str, Any] | None = field(default=None, repr=False)
    holder: str | None = None  # "busy": the process id that has the run


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[2])  # this pointsam, in the child
    env["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _record_attempt(r: SweepRun, wall: float, rc: int, resumed: bool) -> None:
    path = r.out_dir / "sweep_run.json"
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        rec = {"attempts": []}
    rec["attempts"].append({"wall_s": round(wall, 3), "returncode": rc,
                            "resumed": resumed, "ended": time.strftime("%FT%T")})
    rec["wall_s"] = round(sum(a["wall_s"] for a in rec["attempts"]), 3)
    atomic_write_text(path, json.dumps(rec, indent=2) + "\n")


def _eta(done: dict[str, list[float]], waiting: Sequence[SweepRun],
         running: dict[SweepRun, float], jobs: int, now: float) -> float | None:
    """Seconds left: per-config mean duration of finished runs, over the slots."""
    every = [d for ds in done.values() for d in ds]
    if not every:
        return None

    def mean(r: SweepRun) -> float:
        ds = done.get(r.name) or every
        return sum(ds) / len(ds)

    work = sum(mean(r) for r in waiting)
    work += sum(max(mean(r) - (now - t0), 0.0) for r, t0 in running.items())
    slots = max(1, min(jobs, len(waiting) + len(running)))
    return work / slots


def run_sweep(runs: Sequence[SweepRun], jobs: int,
              log: Callable[[str], None] = print,
              poll_s: float = 0.1) -> list[RunOutcome]:
    """Run every unfinished run, at most ``jobs`` processes at once.

    Returns:
        One :class:`RunOutcome` per run, in the order of ``runs``.
    """
    if jobs < 1:
        raise SweepError(f"--jobs must be >= 1, got {jobs}")
    outcomes: dict[SweepRun, RunOutcome] = {}
    todo: deque[SweepRun] = deque()
    for r in runs:
        taken = _taken(r)
        if taken is None:
            todo.append(r)
            continue
        outcomes[r] = taken
        if taken.status == "busy":  # e.g. left running by a sweep that was killed
            log(f"[sweep] {r.label} is being trained by process {taken.holder} "
                "(its sweep.pid or its folder's lock); not started again")
    total = len(todo)
    busy = sum(o.status == "busy" for o in outcomes.values())
    log(f"[sweep] {len(runs)} runs: {len(runs) - total - busy} already finished, "
        f"{total} to run, {min(jobs, max(total, 1))} at once")
    env = _child_env()
    procs: dict[SweepRun, tuple[subprocess.Popen, float, bool, Any]] = {}
    durations: dict[str, list[float]] = {}
    finished = 0
    try:
        while todo or procs:
            while todo and len(procs) < jobs:
                r = todo.popleft()
                taken = _taken(r)  # another sweep on the same --out got there first
                if taken is not None:
                    outcomes[r] = taken
                    total -= 1
                    log(f"[sweep] {r.label} " + (
                        "was finished by another process meanwhile; skipped"
                        if taken.status == "skipped" else
                        f"was started by process {taken.holder} meanwhile; "
                        "not started again"))
                    continue
                r.out_dir.mkdir(parents=True, exist_ok=True)
                resume = (r.out_dir / "last.pt").is_file()
                fh = open(r.out_dir / "sweep.log", "a")  # noqa: SIM115 (closed below)
                fh.write(f"\n$ {shlex.join(r.command(resume))}\n")
                fh.flush()
                p = subprocess.Popen(r.command(resume), stdout=fh,
                                     stderr=subprocess.STDOUT, env=env)
                procs[r] = (p, time.time(), resume, fh)
                atomic_write_text(r.out_dir / "sweep.pid", f"{p.pid}\n")
                if resume:
                    log(f"[sweep] resuming {r.label} from {r.out_dir / 'last.pt'}")
            for r, (p, t0, resume, fh) in list(procs.items()):
                rc = p.poll()
                if rc is None:
                    continue
                fh.close()
                del procs[r]
                (r.out_dir / "sweep.pid").unlink(missing_ok=True)
                wall = time.time() - t0
                _record_attempt(r, wall, rc, resume)
                finished += 1
                s = read_summary(r.summary_path) if rc == 0 else None
                left = total - finished
                if s is None:
                    outcomes[r] = RunOutcome(r, "failed", resume, wall, rc)
                    tail = _log_tail(r.out_dir / "sweep.log")
                    log(f"[sweep] FAILED {r.label} (exit {rc}) after "
                        f"{fmt_duration(wall)}: {tail} (log: {r.out_dir / 'sweep.log'}); "
                        f"{left} left")
                    continue
                outcomes[r] = RunOutcome(r, "done", resume, wall, rc, s)
                durations.setdefault(r.name, []).append(wall)
                now = time.time()
                eta = _eta(durations, todo, {q: v[1] for q, v in procs.items()},
                           jobs, now)
                log(f"[sweep] {finished}/{total} done: {r.label}: "
                    f"{metrics_text(s)} ({fmt_duration(wall)}); {left} left"
                    + (f", about {fmt_duration(eta)} to go" if left and eta else ""))
            if procs:
                time.sleep(poll_s)
    finally:  # Ctrl-C or an error: stop our children; their last.pt remains
        for p, *_ in procs.values():
            p.terminate()
        for r, (p, _, _, fh) in procs.items():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            fh.close()
            (r.out_dir / "sweep.pid").unlink(missing_ok=True)
    return [outcomes[r] for r in runs]


def _taken(r: SweepRun) -> RunOutcome | None:
    """``skipped`` when ``r`` has a valid summary, ``busy`` when another process
    trains it (a live pid in its ``sweep.pid``, written by the sweep that
    started it, or a holder of its folder's lock, taken by the run itself once
    it starts); None when it is free to start."""
    s = read_summary(r.summary_path)
    if s is not None:
        return RunOutcome(r, "skipped", summary=s)
    pid = _live_pid(r)
    holder = str(pid) if pid is not None else lock_holder(r.out_dir)
    return None if holder is None else RunOutcome(r, "busy", holder=holder)


def _live_pid(r: SweepRun) -> int | None:
    """The pid in ``sweep.pid`` when that process still runs ``pointsam train``."""
    try:
        pid = int((r.out_dir / "sweep.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):  # no file, no such process, or no /proc
        return None
    return pid if b"pointsam" in cmdline and b"train" in cmdline else None


def _log_tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][-300:] if lines else "empty log"


def baseline_name(runs: Sequence[SweepRun], baseline: str | None) -> str:
    """The run name of ``--baseline`` (a config's stem or path; default: the
    first config)."""
    names = list(dict.fromkeys(r.name for r in runs))
    if baseline is None:
        return names[0]
    for r in runs:
        if baseline in (r.name, str(r.config)) or Path(baseline).resolve() == r.config:
            return r.name
    raise SweepError(f"--baseline {baseline!r} is none of the configs: "
                     + ", ".join(names))
