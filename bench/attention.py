"""Attention benchmark: LocalAttention(vector) against PyG, and O(N) scaling.

    python -m bench.attention [--quick] [--device cpu|cuda] [--repeat 3]

1. ``LocalAttention(mode="vector")`` against PyG ``PointTransformerConv`` with the
   same ``pos_nn``/``attn_nn`` and weights (loaded with ``LocalAttention.from_pyg``),
   C = 64, k = 16, the same kNN table (PyG gets it as ``edge_index``), at 20k and
   100k points: forward + backward, median wall time and peak memory. Outputs are
   asserted equal first. Each measurement runs in its own subprocess, after a
   warm-up on 300 points (lazy imports, allocator): peak CPU memory is the rise
   of the peak resident size (``VmHWM``, reset through ``/proc/self/clear_refs``;
   ``ru_maxrss`` where that is not possible) over the resident size before the
   first full-size forward; CUDA: the ``torch.cuda.max_memory_allocated`` rise.
2. Scaling of ``LocalGlobalAttention``, ``AxialAttention`` and ``CBAM`` (when part B
   is present) from 1k to 200k points, C = 64: time and peak memory per point.
3. One line per target, e.g. ``local_vector_vs_pyg_100k speed=2.31x memory=0.42x``
   (targets: speed >= 2x, memory <= 0.5x).

``--quick`` uses small sizes (2k/5k points; scaling 1k..8k) to check the script.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
C, K = 64, 16


def _cloud(n: int, seed: int,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """n points uniform in a cube of constant density (1000 points per unit^3)."""
    g = torch.Generator().manual_seed(seed)
    side = (n / 1000.0) ** (1 / 3)
    pos = torch.rand(n, 3, generator=g) * side
    x = torch.randn(n, C, generator=g)
    return pos.to(device), x.to(device)


def _pyg_pair(device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A PyG PointTransformerConv (PyG example MLPs) and our copy of it."""
    from torch_geometric.nn import MLP as PygMLP
    from torch_geometric.nn import PointTransformerConv

    from pointsam.nn import LocalAttention

    torch.manual_seed(0)
    pos_nn = PygMLP([3, 64, C], norm=None, plain_last=False)
    attn_nn = PygMLP([C, 64, C], norm=None, plain_last=False)
    conv = PointTransformerConv(C, C, pos_nn=pos_nn, attn_nn=attn_nn).to(device)
    ours = LocalAttention.from_pyg(conv, k=K).to(device)
    return conv, ours


def _edge_index(nbr_idx: torch.Tensor, nbr_mask: torch.Tensor) -> torch.Tensor:
    """PyG edge_index [2, E] (row 0 source j, row 1 target i) of a kNN table."""
    tgt = torch.arange(nbr_idx.size(0), device=nbr_idx.device).unsqueeze(1)
    tgt = tgt.expand_as(nbr_idx)  # [N, K]
    return torch.stack([nbr_idx[nbr_mask], tgt[nbr_mask]])  # [2, E]


def _module(case: str, device: torch.device) -> torch.nn.Module:
    from pointsam import nn as pnn

    torch.manual_seed(0)
    if case == "lga":
        return pnn.LocalGlobalAttention(C, C, num_heads=8, k=K).to(device)
    if case == "axial":
        return pnn.AxialAttention(C, C, num_heads=8, k=K).to(device)
    if case == "cbam":
        return pnn.CBAM(C).to(device)  # part B
    raise ValueError(case)


def _status_bytes(key: str) -> int:
    """A ``/proc/self/status`` size (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak_rss() -> bool:
    """Reset the process's peak RSS (``VmHWM``); False where the kernel cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_bytes("VmHWM") <= _status_bytes("VmRSS") + (1 << 20)
    except (OSError, KeyError):
        return False


def worker(case: str, n: int, device: str, repeat: int) -> dict[str, float]:
    """One measurement in this process: forward + backward time and peak memory."""
    import statistics
    import time

    from pointsam import ops

    dev = torch.device(device)
    torch.set_grad_enabled(True)
    pos, x = _cloud(n, 0, dev)
    x.requires_grad_(True)
    pos_w, x_w = _cloud(300, 2, dev)  # warm-up cloud: lazy imports, allocator
    if case in ("ours", "ours_plain", "pyg"):
        conv, ours = _pyg_pair(dev)
        ours.fused = case == "ours"

        def make_fn(x: torch.Tensor, pos: torch.Tensor):  # noqa: ANN202
            nbr_idx, nbr_mask = ops.knn(pos, K)  # [N, K], not timed
            if case == "pyg":
                ei = _edge_index(nbr_idx, nbr_mask)
                return lambda: conv(x, pos, ei)
            return lambda: ours(x, pos, None, nbr_idx, nbr_mask)
    else:
        m = _module(case, dev)

        def make_fn(x: torch.Tensor, pos: torch.Tensor):  # noqa: ANN202
            return lambda: m(x, pos)

    def step(f) -> None:  # noqa: ANN001
        out = f()
        out.sum().backward()

    step(make_fn(x_w.requires_grad_(True), pos_w))
    fn = make_fn(x, pos)
    sync = dev.type == "cuda"
    gc.collect()
    if sync:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        reset = _reset_peak_rss()
        base = _status_bytes("VmRSS")
    step(fn)  # the first run sets the peak
    if sync:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    elif reset:
        peak = _status_bytes("VmHWM") - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    times = []
    for _ in range(repeat):
        x.grad = None
        if sync:
            torch.cuda.synchronize()
        t = time.perf_counter()
        step(fn)
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return {"time": statistics.median(times), "mem": max(peak, 0) / 2 ** 20}


def check_equal(n: int, device: str) -> tuple[float, float]:
    """Max |ours - PyG| over outputs and input gradients on n points, float64 and
    float32. Asserted: float64 within 1e-9 (the same math), float32 within 1e-3 of
    the largest value (summation order differs)."""
    from pointsam import ops

    dev = torch.device(device)
    pos, x = _cloud(n, 1, dev)
    nbr_idx, nbr_mask = ops.knn(pos, K)
    ei = _edge_index(nbr_idx, nbr_mask)
    errs = []
    for dtype in (torch.float64, torch.float32):
        conv, ours = _pyg_pair(dev)
        conv, ours = conv.to(dtype), ours.to(dtype)
        p = pos.to(dtype)
        xa = x.to(dtype).requires_grad_(True)
        xb = x.to(dtype).requires_grad_(True)
        a = conv(xa, p, ei)
        b = ours(xb, p, None, nbr_idx, nbr_mask)
        a.square().sum().backward()
        b.square().sum().backward()
        err = max(float((a - b).detach().abs().max()),
                  float((xa.grad - xb.grad).abs().max()))
        scale = max(float(a.detach().abs().max()), float(xa.grad.abs().max()))
        tol = 1e-9 if dtype == torch.float64 else 1e-3 * scale
        assert err <= tol, f"ours != PyG on {n} points ({dtype}): max error {err:.3g}"
        errs.append(err)
    return errs[0], errs[1]


def _run(case: str, n: int, device: str, repeat: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "bench.attention", "--worker", case, str(n),
           "--device", device, "--repeat", str(repeat),
           "--threads", str(torch.get_num_threads())]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr else "?"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: torch's default)")
    ap.add_argument("--worker", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        case, n = args.worker
        print(json.dumps(worker(case, int(n), args.device, args.repeat)))
        return

    sizes = [2000, 5000] if args.quick else [20000, 100000]
    scaling = [1000, 2000, 4000, 8000] if args.quick else \
        [1000, 5000, 20000, 50000, 100000, 200000]
    cpu = platform.processor() or platform.machine()
    print(f"# pointsam attention benchmark ({cpu}, {torch.get_num_threads()} threads,"
          f" {os.cpu_count()} CPUs, torch {torch.__version__}, device {args.device})")
    print(f"\n## LocalAttention(vector) vs PyG PointTransformerConv, C={C}, k={K}, "
          f"forward+backward, median of {args.repeat}\n")
    e64, e32 = check_equal(sizes[0], args.device)
    print(f"outputs and input gradients equal to PyG's on {sizes[0]} points: max "
          f"abs error {e64:.1e} in float64, {e32:.1e} in float32\n")
    print("| points | PyG time | PyG peak | ours plain time | ours plain peak "
          "| ours fused time | ours fused peak | speed | memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    targets = []
    for n in sizes:
        r = {c: _run(c, n, args.device, args.repeat)
             for c in ("pyg", "ours_plain", "ours")}
        if any("error" in v for v in r.values()):
            print(f"| {n} | " + " | ".join(str(v) for v in r.values()) + " |")
            continue
        speed = r["pyg"]["time"] / r["ours"]["time"]
        mem = r["ours"]["mem"] / max(r["pyg"]["mem"], 1e-9)
        print(f"| {n} | {r['pyg']['time']:.3f} s | {r['pyg']['mem']:.0f} MiB "
              f"| {r['ours_plain']['time']:.3f} s | {r['ours_plain']['mem']:.0f} MiB "
              f"| {r['ours']['time']:.3f} s | {r['ours']['mem']:.0f} MiB "
              f"| {speed:.2f}x | {mem:.2f}x |", flush=True)
        targets.append((f"local_vector_vs_pyg_{n // 1000}k", speed, mem))

    if not args.skip_scaling:
        print(f"\n## Scaling, C={C}, k={K}, forward+backward, one timed run after "
              "the peak-memory run (per point: us, KiB)\n")
        print("| module | " + " | ".join(f"{n // 1000}k" for n in scaling) + " |")
        print("|---|" + "---|" * len(scaling))
        for case, name in (("lga", "LocalGlobalAttention"), ("axial", "AxialAttention"),
                           ("cbam", "CBAM")):
            cells = []
            for n in scaling:
                r = _run(case, n, args.device, 1)
                if "error" in r:
                    cells.append("n/a")
                    if "CBAM" in r["error"] or "import" in r["error"].lower():
                        break
                    continue
                us, kib = r["time"] / n * 1e6, r["mem"] * 1024 / n
                cells.append(f"{us:.1f} us, {kib:.2f} KiB")
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)

    print("\n## Targets (speed >= 2x, memory <= 0.5x)\n")
    for name, speed, mem in targets:
        print(f"{name} speed={speed:.2f}x memory={mem:.2f}x")


if __name__ == "__main__":
    main()
