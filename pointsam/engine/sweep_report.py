r"""The tables and figure of a sweep, from its runs' ``summary.json`` files.

For each configuration :math:`c` and seed :math:`s`, a run reports test metrics
:math:`m_{c,s}` (evaluated once, with the checkpoint chosen on validation). The
report gives:

- per configuration, the mean and the sample standard deviation
  (:math:`n - 1` in the denominator) over seeds of each metric of the task,
  the parameter count, the training time (wall-clock of training + validation,
  summed over resumes) and the epochs chosen on validation (the steps, for
  runs that count steps, ``train.steps``: their ``summary.json`` says
  ``"unit": "step"``, and the columns are then ``best_steps``, ``steps_run``...);
- per seed, every number;
- against the baseline :math:`b`, the paired differences
  :math:`d_s = m_{c,s} - m_{b,s}` over the seeds both finished, their mean
  :math:`\bar d` and the 95% Student-t interval
  :math:`\bar d \pm t_{0.975, n-1}\, \mathrm{sd}(d) / \sqrt{n}`; an interval that
  includes zero is reported as "no measurable difference".

Files: ``results.md`` (percent), ``results.csv`` (one row per configuration,
metrics as fractions as in ``summary.json``), ``results_seeds.csv`` (one row per
run) and ``results.png`` (the task's first metric against parameters and against
training time, mean with standard-deviation error bars).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pointsam._atomic import atomic_write, atomic_write_text

__all__ = ["METRICS", "SeedResult", "collect", "mean_std", "paired_difference",
           "metrics_text", "read_summary", "fmt_duration", "write_report"]

#: The test metrics reported per task: (summary key, label); the first is primary.
METRICS: dict[str, tuple[tuple[str, str], ...]] = {
    "cls": (("oa", "OA"), ("macc", "mAcc")),
    "partseg": (("instance_miou", "instance mIoU"), ("class_miou", "class mIoU")),
    "semseg": (("miou", "mIoU"), ("oa", "OA")),
}
TASK_NAMES = {"cls": "classification", "partseg": "part segmentation",
              "semseg": "semantic segmentation"}
NAN = float("nan")


@dataclass
class SeedResult:
    """The numbers of one finished run."""

    config: str
    seed: int
    task: str
    metrics: dict[str, float]
    params: int
    train_time_s: float
    best_epoch: int | None
    epochs_run: int
    epochs_planned: int
    time_budget_s: float
    stopped_by_budget: bool
    wall_s: float
    unit: str = "epoch"  # what best_epoch / epochs_run / epochs_planned count


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else NAN


def _result(config: str, seed: int, s: dict[str, Any], wall: float) -> SeedResult:
    task = s.get("task", "")
    cfg_train = s.get("config", {}).get("train", {})
    unit = "step" if s.get("unit") == "step" else "epoch"
    chosen = s.get("best", {})
    best = None if "note" in chosen else chosen.get(unit)  # note: no val split, last kept
    if unit == "step":
        run = int(s.get("steps_run", 0))
        planned = int(s.get("steps_planned", cfg_train.get("steps", 0)))
    else:
        run = int(s.get("epochs_run", len(s.get("history", []))))
        planned = int(cfg_train.get("epochs", 0))
    return SeedResult(
        config, seed, task,
        {k: _num(s["test"].get(k)) for k, _ in METRICS.get(task, ())},
        int(s.get("num_parameters", 0)), _num(s.get("train_time_s")),
        int(best) if isinstance(best, int) else None, run, planned,
        _num(s.get("time_budget_s", cfg_train.get("time_budget_s", 0.0))),
        bool(s.get("stopped_by_time_budget", False)), wall, unit)


def read_summary(path: str | Path) -> dict[str, Any] | None:
    """A finished run's ``summary.json``, or ``None`` when absent or not valid."""
    try:
        s = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    ok = (isinstance(s, dict) and isinstance(s.get("test"), dict)
          and isinstance(s.get("config"), dict) and "task" in s)
    return s if ok else None


def collect(out: str | Path, names: Sequence[str], seeds: Sequence[int]
            ) -> tuple[list[SeedResult], list[tuple[str, int]]]:
    """Finished runs under ``out/runs`` (config-major) and the missing (name, seed)."""
    found, missing = [], []
    for n in names:
        for seed in seeds:
            d = Path(out) / "runs" / n / f"seed{seed}"
            s = read_summary(d / "summary.json")
            if s is None:
                missing.append((n, seed))
                continue
            try:
                wall = _num(json.loads((d / "sweep_run.json").read_text())["wall_s"])
            except (OSError, ValueError, KeyError):
                wall = NAN
            found.append(_result(n, seed, s, wall))
    return found, missing


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN std for fewer than two values).

    Example:
        >>> mean_std([1.0, 2.0, 3.0])
        (2.0, 1.0)
    """
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return NAN, NAN
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, NAN
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def paired_difference(base: dict[int, float], other: dict[int, float]
                      ) -> dict[str, Any]:
    r"""Paired differences ``other - base`` over the seeds both have.

    Returns:
        ``seeds``, ``diffs``, ``n``, ``mean``, ``std``, the 95% Student-t interval
        ``lo``/``hi`` (NaN for ``n < 2``) and ``verdict`` in words.

    Example:
        >>> d = paired_difference({0: 0.90, 1: 0.92}, {0: 0.91, 1: 0.95})
        >>> d["n"], round(d["mean"], 3), d["verdict"]
        (2, 0.02, 'no measurable difference')
    """
    from scipy import stats

    seeds = sorted(s for s in set(base) & set(other)
                   if not (math.isnan(base[s]) or math.isnan(other[s])))
    diffs = [other[s] - base[s] for s in seeds]
    n = len(diffs)
    m, sd = mean_std(diffs)
    lo = hi = NAN
    if n >= 2:
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        lo, hi = m - half, m + half
    if n == 0:
        verdict = "no paired seeds"
    elif n < 2:
        verdict = "one paired seed: no interval"
    elif lo <= 0.0 <= hi:
        verdict = "no measurable difference"
    elif lo > 0:
        verdict = "higher than the baseline"
    else:
        verdict = "lower than the baseline"
    return {"seeds": seeds, "diffs": diffs, "n": n, "mean": m, "std": sd,
            "lo": lo, "hi": hi, "verdict": verdict}


def _aggregate(results: list[SeedResult], names: Sequence[str], baseline: str,
               task: str, unit: str = "epoch") -> list[dict[str, Any]]:
    """One dict per configuration: stats and paired differences.

    The schedule columns are named by ``unit``: ``best_epochs``,
    ``best_epoch_mean``, ``epochs_run``, ``epochs_planned`` (or ``best_steps``...).
    """
    keys = [k for k, _ in METRICS.get(task, ())]
    rows = []
    for n in names:
        rs = [r for r in results if r.config == n]
        row: dict[str, Any] = {"config": n, "task": task, "n_seeds": len(rs),
                               "seeds": [r.seed for r in rs],
                               "baseline": n == baseline}
        for k in keys:
            row[f"{k}_mean"], row[f"{k}_std"] = mean_std([r.metrics[k] for r in rs])
        row["params"] = max((r.params for r in rs), default=0)
        row["train_time_s_mean"], row["train_time_s_std"] = mean_std(
            [r.train_time_s for r in rs])
        row[f"best_{unit}s"] = [r.best_epoch for r in rs]
        row[f"best_{unit}_mean"] = mean_std(
            [float(r.best_epoch) for r in rs if r.best_epoch is not None])[0]
        row[f"{unit}s_run"] = [r.epochs_run for r in rs]
        row[f"{unit}s_planned"] = max((r.epochs_planned for r in rs), default=0)
        row["time_budget_s"] = max((r.time_budget_s for r in rs), default=0.0)
        for k in keys:
            if n == baseline:
                continue
            d = paired_difference(
                {r.seed: r.metrics[k] for r in results if r.config == baseline},
                {r.seed: r.metrics[k] for r in rs})
            for f in ("n", "mean", "lo", "hi", "verdict"):
                row[f"{k}_diff_{f}"] = d[f]
            row[f"{k}_diffs"] = d["diffs"]
        rows.append(row)
    return rows


def metrics_text(summary: dict[str, Any]) -> str:
    """The task's test metrics of a run summary, e.g. ``oa=0.9053 macc=0.8890``."""
    test = summary.get("test", {})
    keys = METRICS.get(summary.get("task", ""), ())
    return " ".join(f"{k}={test[k]:.4f}" for k, _ in keys
                    if isinstance(test.get(k), (int, float)))


def fmt_duration(s: float) -> str:
    """``42 s``, ``12 min`` or ``3.5 h``."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


# ----------------------------------------------------------------------- files
def _csv_value(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return ""
    if isinstance(v, list):
        return " ".join("" if x is None else repr(x) for x in v)
    return v


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with atomic_write(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_value(r.get(k, "")) for k in keys})


def _pct(m: float, s: float = NAN) -> str:
    if math.isnan(m):
        return "-"
    return f"{100 * m:.2f}" + ("" if math.isnan(s) else f" ± {100 * s:.2f}")


def _pts(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:+.2f}"


def _secs(m: float, s: float = NAN) -> str:
    if math.isnan(m):
        return "-"
    f = ".1f" if m < 100 else ".0f"
    return f"{m:{f}}" + ("" if math.isnan(s) else f" ± {s:{f}}")


def _same_or_list(xs: list[Any]) -> str:
    xs = ["-" if x is None else x for x in xs]
    return str(xs[0]) if xs and len(set(xs)) == 1 else ", ".join(map(str, xs))


def _markdown(rows: list[dict[str, Any]], results: list[SeedResult],
              missing: list[tuple[str, int]], task: str, baseline: str,
              seeds: Sequence[int], command: str, jobs: int | None,
              unit: str = "epoch") -> str:
    metrics = METRICS.get(task, ())
    if unit == "step" and results and all(r.best_epoch is None for r in results):
        scored = ("Test metrics in percent over every point of the test split, "
                  "evaluated once with the weights of the last step (no "
                  "validation split: nothing was chosen)")
    elif unit == "step":  # train.steps runs (LiDAR frames)
        scored = ("Test metrics in percent over every point of the test split, "
                  "evaluated once with the weights of the step chosen on the "
                  "validation split")
    else:
        scored = ("Test-split metrics in percent, each run's test split evaluated "
                  "once with the checkpoint chosen on its validation carve-out")
    budgets = {r["config"]: r["time_budget_s"] for r in rows}
    if len(set(budgets.values())) == 1:
        b = next(iter(budgets.values()))
        budget = f" Time budget: {b:g} s of training per run." if b > 0 else ""
    else:
        budget = " Time budget per run: " + ", ".join(
            f"{n} {'none' if b <= 0 else f'{b:g} s'}" for n, b in budgets.items()) + "."
    lines = [
        "# Sweep results", "",
        f"Task: {TASK_NAMES.get(task, task)}. {scored}; mean ± sample std over seeds "
        f"{', '.join(map(str, seeds))}. Baseline: `{baseline}`.", "",
        f"Command: `{command}`", "",
        f"Runs: {len(results)} finished of {len(results) + len(missing)}"
        + (f" (missing: {', '.join(f'{n} seed {s}' for n, s in missing)})"
           if missing else "")
        + (f"; {jobs} run(s) at once" if jobs else "")
        + ". Training time is wall-clock of training and validation per run "
        "(summed over resumes), measured while the runs shared the machine."
        + budget, "",
        "## Per configuration", "",
        "| config | seeds | " + " | ".join(f"{lab} (%)" for _, lab in metrics)
        + f" | params | train time (s) | {unit} chosen | {unit}s run |",
        "|---|---:|" + "---:|" * len(metrics) + "---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['n_seeds']} | "
            + " | ".join(_pct(r[f"{k}_mean"], r[f"{k}_std"]) for k, _ in metrics)
            + f" | {r['params']:,} | {_secs(r['train_time_s_mean'], r['train_time_s_std'])}"
            f" | {_same_or_list(r[f'best_{unit}s'])} | "
            f"{_same_or_list(r[f'{unit}s_run'])} of {r[f'{unit}s_planned']} |")
    lines += ["", f"## Against the baseline `{baseline}`", "",
              "Paired by seed: the difference on each seed (percentage points), "
              "its mean and 95% Student-t interval over the seeds.", "",
              "| config | metric | per seed | mean | 95% interval | verdict |",
              "|---|---|---|---:|---|---|"]
    for r in rows:
        if r["baseline"]:
            continue
        for k, lab in metrics:
            lo, hi = r[f"{k}_diff_lo"], r[f"{k}_diff_hi"]
            ci = "-" if math.isnan(lo) else f"[{_pts(lo)}, {_pts(hi)}]"
            per = ", ".join(_pts(d) for d in r[f"{k}_diffs"]) or "-"
            lines.append(f"| {r['config']} | {lab} | {per} | "
                         f"{_pts(r[f'{k}_diff_mean'])} | {ci} | "
                         f"{r[f'{k}_diff_verdict']} |")
    lines += ["", "## Per seed", "",
              "| config | seed | " + " | ".join(f"{lab} (%)" for _, lab in metrics)
              + f" | train time (s) | {unit} chosen | {unit}s run | "
              "stopped by budget |",
              "|---|---:|" + "---:|" * len(metrics) + "---:|---:|---:|---|"]
    for s in results:
        lines.append(
            f"| {s.config} | {s.seed} | "
            + " | ".join(_pct(s.metrics[k]) for k, _ in metrics)
            + f" | {_secs(s.train_time_s)} | "
            f"{'-' if s.best_epoch is None else s.best_epoch} | {s.epochs_run} | "
            f"{'yes' if s.stopped_by_budget else 'no'} |")
    return "\n".join(lines) + "\n"


def write_report(out: str | Path, names: Sequence[str], seeds: Sequence[int],
                 baseline: str, *, command: str = "", jobs: int | None = None,
                 draw: Callable[[list[dict[str, Any]], str, str], Any] | None = None
                 ) -> list[Path]:
    """Write results.md, results.csv, results_seeds.csv (and results.png) to ``out``.

    ``draw(rows, metric key, metric label)`` returns the figure of the task's
    first metric (``pointsam.viz.sweep_figure``, which the command passes:
    the engine draws nothing itself); without it no ``results.png`` is written.

    Raises:
        ValueError: no run of the sweep has finished yet, or the runs mix tasks.
    """
    out = Path(out)
    results, missing = collect(out, names, seeds)
    if not results:
        raise ValueError(f"no finished run under {out / 'runs'} to report on "
                         f"({len(missing)} missing)")
    tasks = sorted({r.task for r in results})
    if len(tasks) != 1 or tasks[0] not in METRICS:
        raise ValueError(f"the runs under {out / 'runs'} are of tasks {tasks}; "
                         "a report needs one of " + ", ".join(METRICS))
    task = tasks[0]
    units = sorted({r.unit for r in results})
    if len(units) != 1:
        raise ValueError(f"the runs under {out / 'runs'} count both epochs and steps "
                         "(train.epochs and train.steps runs): report them separately")
    unit = units[0]
    rows = _aggregate(results, names, baseline, task, unit)
    paths = [out / "results.md", out / "results.csv", out / "results_seeds.csv"]
    atomic_write_text(paths[0], _markdown(rows, results, missing, task, baseline, seeds,
                                  command, jobs, unit))
    _write_csv(paths[1], rows)
    _write_csv(paths[2], [
        {"config": s.config, "seed": s.seed,
         **{f"{k}": s.metrics[k] for k, _ in METRICS[task]},
         "params": s.params, "train_time_s": s.train_time_s,
         f"best_{unit}": s.best_epoch, f"{unit}s_run": s.epochs_run,
         f"{unit}s_planned": s.epochs_planned, "time_budget_s": s.time_budget_s,
         "stopped_by_time_budget": s.stopped_by_budget, "run_wall_s": s.wall_s}
        for s in results])
    if draw is not None:
        paths.append(out / "results.png")
        fig = draw(rows, *METRICS[task][0])
        with atomic_write(paths[3]) as f:
            fig.savefig(f, format="png")
    return paths
