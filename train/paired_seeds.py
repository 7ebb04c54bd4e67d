"""Paired differences between configurations of two sweeps, seed by seed.

    python train/paired_seeds.py A/results_seeds.csv:CONFIG_A B/results_seeds.csv:CONFIG_B \
        [--metric oa]

Prints, for each ``BASE OTHER`` pair of arguments, the per-seed values, the
paired differences ``other - base`` and their 95% Student-t interval
(:func:`pointsam.engine.sweep_report.paired_difference`). For comparing runs of
two sweeps that share seeds, e.g. a module before and after a change, where the
baseline's runs are deterministic on the CPU and need not be trained again.
"""

import argparse
import csv

from pointsam.engine.sweep_report import mean_std, paired_difference


def _runs(spec: str, metric: str) -> tuple[str, dict[int, float]]:
    path, _, config = spec.rpartition(":")
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["config"] == config]
    if not rows:
        raise SystemExit(f"{path} has no run of {config!r}")
    return config, {int(r["seed"]): float(r[metric]) for r in rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pairs", nargs="+", help="BASE OTHER [BASE OTHER ...], each "
                   "PATH/results_seeds.csv:CONFIG")
    p.add_argument("--metric", default="oa")
    args = p.parse_args(argv)
    if len(args.pairs) % 2:
        raise SystemExit("give BASE OTHER pairs")
    print(f"| base | other | {args.metric} base (mean ± std) | other | per seed "
          "(other - base) | mean | 95% interval | verdict |")
    print("|---|---|---:|---:|---|---:|---|---|")
    for i in range(0, len(args.pairs), 2):
        nb, b = _runs(args.pairs[i], args.metric)
        no, o = _runs(args.pairs[i + 1], args.metric)
        d = paired_difference(b, o)
        mb, sb = mean_std([100 * v for v in b.values()])
        mo, so = mean_std([100 * v for v in o.values()])
        per = ", ".join(f"{100 * x:+.2f}" for x in d["diffs"])
        print(f"| {nb} | {no} | {mb:.2f} ± {sb:.2f} | {mo:.2f} ± {so:.2f} | {per} | "
              f"{100 * d['mean']:+.2f} | [{100 * d['lo']:+.2f}, {100 * d['hi']:+.2f}] "
              f"| {d['verdict']} |")


if __name__ == "__main__":
    main()
