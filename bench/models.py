"""Backbone benchmark: pointsam.models against a dense DGCNN, scans, lite models.

    python -m bench.models [--quick] [--repeat 3] [--device cpu|cuda] [--out FILE]

Prints markdown tables; every figure that compares two things is a ratio taken
in the same run:

1. DGCNN classification training step (forward, backward, SGD step), 16 clouds
   x 1024 points, k = 20: ``dgcnn_cls`` against :class:`DenseDGCNN`, a reference
   written here from the paper's formulation ([B, C, N] tensors, the N x N
   pairwise distance and ``topk``, the edge feature [x_j - x_i, x_i] built
   explicitly, 1x1 ``Conv2d``). Both have the same parameter count.
2. One cloud of 50k points: the dense reference needs its N x N distance matrix
   (N^2 x 4 bytes = 10 GB, and ``knn`` holds about three of them), measured at
   smaller N and extrapolated (it does not fit this machine's memory); ours with
   ``static_graph=True`` is measured, inference.
3. Whole-scan semantic segmentation inference on a synthetic LiDAR scan of 30k,
   60k and 120k points: ``pointnet2_ssg_semseg`` and ``dgcnn_semseg``
   (static graph), each with and without ``local_global`` attention; time and
   peak memory (peak RSS above the level before the forward, each case in its
   own process; on CUDA ``max_memory_allocated``).
4. Training-step time of each lite model at 16 clouds x 512 points.
5. ``validate``: validation once at the boundary against validation at every
   level (issue 15), interleaved in the same run (``paired_times``): a
   ``pointnet2_lite_cls`` training step, 16 x 1024 points, and a whole-scan
   ``pointnet2_lite_semseg`` inference on the real KITTI object scan
   ``../shared/data/kitti_object_sample/training/velodyne/004139.bin`` (123k
   points; a synthetic 120k scan when it is absent). "Before" runs the same
   code inside :func:`pointsam.ops.validate_always`, which re-enables every
   internal check, as the code did before it validated once.

``--quick`` runs every section at small sizes (a smoke test, about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.common import lidar_scan, median_time, paired_times
from pointsam import ops
from pointsam.models import create_model, list_models

_KITTI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "shared", "data", "kitti_object_sample", "training",
                      "velodyne", "004139.bin")

# ----------------------------------------------------------------------------
# the dense reference DGCNN, from the paper (Wang et al. 2019, section 3.1)
# ----------------------------------------------------------------------------


def dense_knn(x: Tensor, k: int) -> Tensor:
    """k nearest in feature space, x [B, C, N] -> idx [B, N, k] (N x N distances)."""
    inner = -2 * torch.matmul(x.transpose(2, 1), x)  # [B, N, N]
    xx = torch.sum(x ** 2, dim=1, keepdim=True)  # [B, 1, N]
    neg_dist = -xx - inner - xx.transpose(2, 1)  # [B, N, N]
    return neg_dist.topk(k=k, dim=-1)[1]  # [B, N, k]


def graph_feature(x: Tensor, k: int) -> Tensor:
    """Edge features [x_j - x_i, x_i], x [B, C, N] -> [B, 2C, N, k]."""
    b, c, n = x.shape
    idx = dense_knn(x, k) + torch.arange(b, device=x.device).view(-1, 1, 1) * n
    xt = x.transpose(2, 1).contiguous()  # [B, N, C]
    nbr = xt.view(b * n, c)[idx.view(-1)].view(b, n, k, c)  # [B, N, k, C]
    xi = xt.view(b, n, 1, c).expand(-1, -1, k, -1)  # [B, N, k, C]
    return torch.cat((nbr - xi, xi), dim=3).permute(0, 3, 1, 2).contiguous()


class DenseDGCNN(nn.Module):
    """DGCNN classifier on dense [B, C, N] batches (the paper's architecture).

    EdgeConv 64/64/128/256 (1x1 Conv2d, BN, LeakyReLU 0.2, max over k), a
    1024-d embedding of the concatenated levels, max + mean pooling, MLP
    512-256-classes with BN and dropout 0.5. Biases only where no BN follows.
    """

    def __init__(self, num_classes: int = 40, k: int = 20, emb: int = 1024) -> None:
        super().__init__()
        self.k = k

        def conv(i: int, o: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o),
                                 nn.LeakyReLU(0.2))

        self.convs = nn.ModuleList([conv(6, 64), conv(128, 64), conv(128, 128),
                                    conv(256, 256)])
        self.conv5 = nn.Sequential(nn.Conv1d(512, emb, 1, bias=False),
                                   nn.BatchNorm1d(emb), nn.LeakyReLU(0.2))
        self.head = nn.Sequential(
            nn.Linear(2 * emb, 512, bias=False), nn.BatchNorm1d(512),
            nn.LeakyReLU(0.2), nn.Dropout(0.5),
            nn.Linear(512, 256, bias=False), nn.BatchNorm1d(256),
            nn.LeakyReLU(0.2), nn.Dropout(0.5), nn.Linear(256, num_classes))

    def forward(self, x: Tensor) -> Tensor:  # x [B, 3, N]
        levels = []
        for conv in self.convs:
            x = conv(graph_feature(x, self.k)).max(dim=-1)[0]  # [B, C_l, N]
            levels.append(x)
        x = self.conv5(torch.cat(levels, dim=1))  # [B, emb, N]
        x = torch.cat([x.max(dim=-1)[0], x.mean(dim=-1)], dim=1)  # [B, 2 emb]
        return self.head(x)


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _clouds(b: int, n: int, device: torch.device, seed: int = 0
            ) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(b * n, 3, generator=g)
    pos = pos / pos.norm(dim=1).max()
    batch = torch.arange(b).repeat_interleave(n)
    return pos.to(device), batch.to(device)


def _scan(n: int, device: torch.device) -> Tensor:
    """A synthetic LiDAR scan of about n points (fewer azimuth steps)."""
    return lidar_scan(n_azimuth=max(16, round(1875 * n / 120_000))).to(device)


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:  # resets VmHWM to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _measure(fn: Any, device: torch.device) -> tuple[float, float]:
    """(seconds, peak MB above the level before) of one call of fn()."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        return dt, (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    _reset_peak()
    base = _rss_mb("VmRSS")
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    return dt, _rss_mb("VmHWM") - base


# ----------------------------------------------------------------------------
# cases that run in their own process (peak memory)
# ----------------------------------------------------------------------------


def _scan_model(name: str) -> nn.Module:
    base, _, attn = name.partition("+")
    kw: dict[str, Any] = {"num_classes": 19}
    if base.startswith("dgcnn"):
        kw["static_graph"] = True
    if attn:
        kw["attention"] = attn
    return create_model(base, **kw)


def run_case(case: str, n: int, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    if case == "dense_ref":
        m = DenseDGCNN().to(device).eval()
        x = _clouds(1, n, device)[0].t().unsqueeze(0).contiguous()  # [1, 3, N]
        warm = _clouds(1, 256, device)[0].t().unsqueeze(0).contiguous()

        def fwd() -> Any:
            return m(x)

        def warmup() -> Any:
            return m(warm)
    else:
        if case == "dgcnn_static":
            m = create_model("dgcnn_cls", static_graph=True)
            pos = _clouds(1, n, device)[0]
        else:
            m = _scan_model(case)
            pos = _scan(n, device)
        m = m.to(device).eval()
        wpos = pos[:2048]

        def fwd() -> Any:
            return m(pos=pos)

        def warmup() -> Any:
            return m(pos=wpos)
    with torch.no_grad():
        warmup()  # lazy imports (Open3D), allocator warm-up
        dt, peak = _measure(fwd, device)
    n_pts = int(x.size(2)) if case == "dense_ref" else int(pos.size(0))
    return {"case": case, "n": n_pts, "time_s": dt, "peak_mb": peak}


def _subprocess(case: str, n: int, device: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.models", "--case", case, "--n", str(n),
           "--device", device]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
        return {"case": case, "n": n, "error": tail[0][:120]}
    return json.loads(r.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------


def bench_dgcnn_step(b: int, n: int, repeat: int, device: torch.device) -> list[str]:
    sync = device.type == "cuda"
    pos, batch = _clouds(b, n, device)
    y = torch.randint(0, 40, (b,), device=device)
    ours = create_model("dgcnn_cls", num_classes=40).to(device).train()
    ref = DenseDGCNN(40).to(device).train()
    x = pos.view(b, n, 3).transpose(1, 2).contiguous()  # [B, 3, N]
    opt_o = torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    opt_r = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9)

    def step_ours() -> None:
        opt_o.zero_grad()
        F.cross_entropy(ours(pos=pos, batch=batch), y).backward()
        opt_o.step()

    def step_ref() -> None:
        opt_r.zero_grad()
        F.cross_entropy(ref(x), y).backward()
        opt_r.step()

    times = {"ref": [], "ours": []}  # interleaved, so both see the same load
    step_ours()
    step_ref()
    for _ in range(repeat):
        times["ref"].append(median_time(step_ref, 1, 0, sync))
        times["ours"].append(median_time(step_ours, 1, 0, sync))
    t_ref = sorted(times["ref"])[len(times["ref"]) // 2]
    t_ours = sorted(times["ours"])[len(times["ours"]) // 2]
    return [
        f"### DGCNN classification training step, {b} x {n} points, k = 20",
        "",
        "| model | parameters | step (s) | speed-up vs dense |",
        "| --- | ---: | ---: | ---: |",
        f"| dense reference (bench/models.py) | {_params(ref):,} | {t_ref:.3f} "
        "| 1.00x |",
        f"| pointsam `dgcnn_cls` | {_params(ours):,} | {t_ours:.3f} | "
        f"{t_ref / t_ours:.2f}x |",
    ]


def bench_static(n_big: int, ref_ns: list[int], device: str) -> list[str]:
    rows = [_subprocess("dense_ref", n, device) for n in ref_ns]
    ours = _subprocess("dgcnn_static", n_big, device)
    lines = [f"### One cloud of {n_big:,} points, DGCNN classification inference",
             "", "| model | N | time (s) | peak memory (MB) |",
             "| --- | ---: | ---: | ---: |"]
    ok = [r for r in rows if "error" not in r]
    for r in rows:
        if "error" in r:
            lines.append(f"| dense reference | {r['n']:,} | failed: {r['error']} | |")
        else:
            lines.append(f"| dense reference | {r['n']:,} | {r['time_s']:.2f} | "
                         f"{r['peak_mb']:,.0f} |")
    if ok:
        last = ok[-1]
        s = (n_big / last["n"]) ** 2
        lines.append(f"| dense reference, extrapolated (N^2 from {last['n']:,}) | "
                     f"{n_big:,} | ~{last['time_s'] * s:,.0f} | "
                     f"~{last['peak_mb'] * s:,.0f} (one N x N matrix alone: "
                     f"{n_big ** 2 * 4 / 1e9:.1f} GB) |")
    if "error" in ours:
        lines.append(f"| pointsam `dgcnn_cls`, static graph | {n_big:,} | failed: "
                     f"{ours['error']} | |")
    else:
        lines.append(f"| pointsam `dgcnn_cls`, static graph | {ours['n']:,} | "
                     f"{ours['time_s']:.2f} | {ours['peak_mb']:,.0f} |")
        if ok:
            lines.append("")
            lines.append(f"Ratios at N = {n_big:,}: dense / ours time "
                         f"~{last['time_s'] * s / ours['time_s']:,.0f}x, memory "
                         f"~{last['peak_mb'] * s / max(ours['peak_mb'], 1):,.0f}x.")
    return lines


def bench_scans(sizes: list[int], device: str) -> list[str]:
    cases = ["pointnet2_ssg_semseg", "pointnet2_ssg_semseg+local_global",
             "dgcnn_semseg", "dgcnn_semseg+local_global"]
    lines = ["### Whole-scan semantic segmentation inference (synthetic LiDAR scan)",
             "", "| model | N | time (s) | peak memory (MB) | MB per 1k points |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for case in cases:
        label = case.replace("+", " + ")
        if case.startswith("dgcnn"):
            label += " (static graph)"
        for n in sizes:
            r = _subprocess(case, n, device)
            if "error" in r:
                lines.append(f"| {label} | {n:,} | failed: {r['error']} | | |")
                continue
            lines.append(f"| {label} | {r['n']:,} | {r['time_s']:.2f} | "
                         f"{r['peak_mb']:,.0f} | {r['peak_mb'] / r['n'] * 1e3:.2f} |")
    return lines


def bench_lite(b: int, n: int, repeat: int, device: torch.device) -> list[str]:
    sync = device.type == "cuda"
    lines = [f"### Lite models: training step, {b} clouds x {n} points",
             "", "| model | parameters | step (s) | clouds / s |",
             "| --- | ---: | ---: | ---: |"]
    pos, batch = _clouds(b, n, device)
    for name in list_models("*lite*"):
        torch.manual_seed(0)
        if "partseg" in name:
            m = create_model(name)
            kw = {"category": torch.arange(b, device=device) % 16}
            y = torch.randint(0, 50, (b * n,), device=device)
        elif "semseg" in name:
            m = create_model(name, num_classes=19)
            kw = {}
            y = torch.randint(0, 19, (b * n,), device=device)
        else:
            m = create_model(name, num_classes=10)
            kw = {}
            y = torch.randint(0, 10, (b,), device=device)
        m = m.to(device).train()
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)

        def step(m: nn.Module = m, opt: torch.optim.Optimizer = opt,
                 kw: dict[str, Tensor] = kw, y: Tensor = y) -> None:
            opt.zero_grad()
            F.cross_entropy(m(pos=pos, batch=batch, **kw), y).backward()
            opt.step()

        t = median_time(step, repeat, 1, sync)
        lines.append(f"| `{name}` | {_params(m):,} | {t:.3f} | {b / t:.1f} |")
    return lines


def _kitti_scan(device: torch.device) -> tuple[Tensor, str]:
    import numpy as np

    if os.path.exists(_KITTI):
        pts = np.fromfile(_KITTI, dtype=np.float32).reshape(-1, 4)[:, :3]
        return torch.from_numpy(pts.copy()).to(device), "KITTI 004139.bin"
    return _scan(120_000, device), "synthetic scan"


def bench_validate(b: int, n: int, repeat: int, device: torch.device) -> list[str]:
    sync = device.type == "cuda"
    lines = ["### Validation at the boundary vs at every level (issue 15)", "",
             "before = `ops.validate_always()` (every internal op and module checks "
             "pos/batch/tables again, host syncs included); after = the default "
             f"(checked once at the model's entry). Interleaved, median of {repeat}.",
             "", "| case | N | before (s) | after (s) | after / before |",
             "| --- | ---: | ---: | ---: | ---: |"]
    torch.manual_seed(0)
    pos, batch = _clouds(b, n, device)
    m = create_model("pointnet2_lite_cls", num_classes=10).to(device).train()
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    y = torch.randint(0, 10, (b,), device=device)

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(m(pos=pos, batch=batch), y).backward()
        opt.step()

    def step_before() -> None:
        with ops.validate_always():
            step()

    tb, ta = paired_times(step_before, step, repeat, sync)
    lines.append(f"| `pointnet2_lite_cls` training step, {b} x {n} | {b * n:,} | "
                 f"{tb:.3f} | {ta:.3f} | {ta / tb:.3f} |")
    scan, label = _kitti_scan(device)
    seg = create_model("pointnet2_lite_semseg", num_classes=19).to(device).eval()

    def infer() -> None:
        with torch.no_grad():
            seg(pos=scan)

    def infer_before() -> None:
        with ops.validate_always():
            infer()

    tb, ta = paired_times(infer_before, infer, repeat, sync)
    lines.append(f"| `pointnet2_lite_semseg` inference, {label} | {scan.size(0):,} | "
                 f"{tb:.3f} | {ta:.3f} | {ta / tb:.3f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", help="also write the tables to this markdown file")
    ap.add_argument("--only", default="step,static,scans,lite,validate",
                    help="comma-separated sections to run")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    dev = torch.device(args.device)
    if args.case:
        print(json.dumps(run_case(args.case, args.n, dev)))
        return
    only = set(args.only.split(","))
    q = args.quick
    head = [f"## pointsam.models benchmark ({'quick' if q else 'full'})", "",
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), device "
            f"{args.device}" + (f" ({torch.cuda.get_device_name()})"
                                if dev.type == "cuda" else ""), ""]
    print("\n".join(head), flush=True)
    out = list(head)
    sections = []
    if "step" in only:
        sections.append(lambda: bench_dgcnn_step(4 if q else 16, 256 if q else 1024,
                                                 1 if q else args.repeat, dev))
    if "static" in only:
        sections.append(lambda: bench_static(5_000 if q else 50_000,
                                             [1024, 2048] if q else [4096, 8192],
                                             args.device))
    if "scans" in only:
        sections.append(lambda: bench_scans(
            [4_000, 8_000] if q else [30_000, 60_000, 120_000], args.device))
    if "lite" in only:
        sections.append(lambda: bench_lite(4 if q else 16, 128 if q else 512,
                                           1 if q else args.repeat, dev))
    if "validate" in only:
        sections.append(lambda: bench_validate(4 if q else 16, 256 if q else 1024,
                                               1 if q else args.repeat, dev))
    for section in sections:
        lines = section() + [""]
        print("\n".join(lines), flush=True)
        out += lines
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(out))


if __name__ == "__main__":
    main()
