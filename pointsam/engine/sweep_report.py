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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["METRICS", "SeedResult", "collect", "figure", "mean_std", "paired_difference",
           "short_names", "metrics_text", "read_summary", "fmt_duration", "write_report"]

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
    best = s.get("best", {}).get(unit)
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
    with open(path, "w", newline="") as f:
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
    if unit == "step":  # train.steps runs (LiDAR frames)
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
            + f" | {_secs(s.train_time_s)} | {s.best_epoch} | {s.epochs_run} | "
            f"{'yes' if s.stopped_by_budget else 'no'} |")
    return "\n".join(lines) + "\n"


def short_names(names: Sequence[str]) -> list[str]:
    """Names without their shared ``_``-separated prefix (for figure labels).

    Example:
        >>> short_names(["mn10_pn2_lite", "mn10_pn2_lite_cbam", "mn10_pn2_lite_axial"])
        ['lite', 'cbam', 'axial']
    """
    parts = [n.split("_") for n in names]
    k = 0
    while len(names) > 1 and all(len(p) > k and p[k] == parts[0][k] for p in parts):
        k += 1
    return ["_".join(p[k:]) or p[-1] for p in parts]


def figure(rows: list[dict[str, Any]], task: str) -> Any:
    """Primary metric against parameters and training time, mean ± std.

    ``rows``: one dict per configuration as in ``results.csv`` (``config``,
    ``<metric>_mean``/``_std``, ``params``, ``train_time_s_mean``/``_std``,
    ``n_seeds``). The legend takes as many columns as fit the width; each
    marker is named beside it, clear of the other names, markers and error
    bars (:func:`_annotate`). Returns the matplotlib ``Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    key, label = METRICS[task][0]
    fig = Figure(figsize=(11, 4.8), dpi=150)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    markers = "osD^vP*Xph<>"
    colours = [f"C{i}" for i in range(10)]
    times = [r["train_time_s_mean"] for r in rows if not math.isnan(r["train_time_s_mean"])]
    minutes = bool(times) and max(times) >= 180
    unit = 60.0 if minutes else 1.0
    short = short_names([r["config"] for r in rows])
    labels: list[tuple[Any, float, float, float, float, int]] = []  # (axis, x, y, xe, ye, row)
    for i, r in enumerate(rows):
        y, ye = 100 * r[f"{key}_mean"], 100 * r[f"{key}_std"]
        if math.isnan(y):
            continue
        style = dict(marker=markers[i % len(markers)], color=colours[i % 10],
                     markersize=9, capsize=4, linestyle="none", elinewidth=1.5)
        ye = 0.0 if math.isnan(ye) else ye
        t, te = r["train_time_s_mean"] / unit, r["train_time_s_std"] / unit
        for ax, x, xe in ((axes[0], r["params"] / 1e3, 0.0),
                          (axes[1], t, 0.0 if math.isnan(te) else te)):
            ax.errorbar(x, y, yerr=ye, xerr=xe,
                        label=r["config"] if ax is axes[0] else None, **style)
            labels.append((ax, x, y, xe, ye, i))
    axes[0].set_xlabel("parameters (thousands)", fontsize=11)
    axes[1].set_xlabel("training time per run (" + ("minutes" if minutes else "s")
                       + ")", fontsize=11)
    axes[0].set_ylabel(f"test {label} (%)", fontsize=11)
    n = max((r["n_seeds"] for r in rows), default=0)
    fig.suptitle(f"Test {label} against size and cost: mean ± std over {n} seed(s)",
                 fontsize=12)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.margins(x=0.12, y=0.08)
        ax.tick_params(labelsize=10)
    renderer = fig.canvas.get_renderer()
    for ncol in range(min(len(rows), 4), 0, -1):  # as many columns as fit the width
        legend = fig.legend(loc="lower center", ncol=ncol, fontsize=10, frameon=False)
        if ncol == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            break
        legend.remove()
    lines = -(-len(rows) // ncol)
    fig.tight_layout(rect=(0, 0.08 + 0.05 * (lines - 1), 1, 1))
    _annotate(fig, labels, short, colours)
    return fig


def _annotate(fig: Any, labels: list[tuple[Any, float, float, float, float, int]],
              names: list[str], colours: list[str]) -> None:
    """Name each marker beside it (after the layout, in pixels).

    A name goes right of its marker, or left of it, inside the axes, where it
    covers no name already placed there (top to bottom) and no other
    configuration's marker or error bars (boxes around the marker and each bar);
    where neither side is free it moves down a line until one is, with a thin
    line back to its marker.
    """
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pt = fig.dpi / 72.0  # pixels per point
    bars: dict[Any, list[tuple[int, Any]]] = {}  # axis -> (row, box) obstacles
    for ax, x, y, xe, ye, i in labels:
        to_px = ax.transData.transform
        (x0, y0), (x1, y1) = to_px((x - xe, y - ye)), to_px((x + xe, y + ye))
        (cx, cy), m = to_px((x, y)), 5 * pt  # half a 9-point marker, and a margin
        bars.setdefault(ax, []).extend((i, Bbox.from_extents(*e)) for e in (
            (cx - m, cy - m, cx + m, cy + m),       # the marker
            (cx - 4 * pt, y0, cx + 4 * pt, y1),    # the vertical bar and its caps
            (x0, cy - 4 * pt, x1, cy + 4 * pt)))   # the horizontal bar

    def put(ax: Any, x: float, y: float, i: int, ha: str, line: int
            ) -> tuple[Any, Any, dict[str, Any]]:
        """Name ``i`` ``line`` lines down, right (``ha="left"``) or left of (x, y)."""
        dx = 18 if line else 6
        style = dict(xytext=(dx if ha == "left" else -dx, 5 - 11.0 * line), ha=ha,
                     fontsize=9, textcoords="offset points", color=colours[i % 10])
        text = ax.annotate(names[i], (x, y), **style)
        return text, text.get_window_extent(renderer), style

    placed: dict[Any, list[Any]] = {}
    for ax, x, y, _, _, i in sorted(labels, key=lambda t: -t[2]):  # top to bottom
        taken = placed.setdefault(ax, [])
        others = [b for j, b in bars[ax] if j != i]
        for line in range(len(labels) + 1):
            last = line == len(labels)  # nowhere free: the lowest line, inside
            for ha in ("left", "right"):  # right of the marker, else left of it
                text, box, style = put(ax, x, y, i, ha, line)
                inside = ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1
                if inside and (last or not any(box.overlaps(b) for b in taken + others)):
                    break
                text.remove()
            else:
                if not last:
                    continue
                text, box, style = put(ax, x, y, i, "left", line)
            taken.append(box)
            if line:  # the same text, with a line back to its marker
                text.remove()
                ax.annotate(names[i], (x, y), **style, arrowprops=dict(
                    arrowstyle="-", color=colours[i % 10], lw=0.6,
                    shrinkA=0, shrinkB=4))
            break


def write_report(out: str | Path, names: Sequence[str], seeds: Sequence[int],
                 baseline: str, *, command: str = "", jobs: int | None = None
                 ) -> list[Path]:
    """Write results.md, results.csv, results_seeds.csv and results.png to ``out``.

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
    paths = [out / "results.md", out / "results.csv", out / "results_seeds.csv",
             out / "results.png"]
    paths[0].write_text(_markdown(rows, results, missing, task, baseline, seeds,
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
    figure(rows, task).savefig(paths[3])
    return paths
