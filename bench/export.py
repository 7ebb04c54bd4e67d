"""Deployment benchmark: eager vs torch.compile vs ONNX Runtime, on the CPU.

    python -m bench.export [--repeat 3] [--threads 1 2] [--quick] [--skip-train]
                           [--only-end-to-end | --only-fold]

Every engine runs the same network on the same plan (the plan, computed by
:mod:`pointsam.ops`, is timed on its own and is the same for all three):

1. classification, ``pointnet2_lite_cls``: 1 x 1024 points (latency) and
   32 x 1024 points (throughput, clouds/s);
2. semantic segmentation, ``pointnet2_lite_semseg``: the real KITTI object scan
   ``../shared/data/kitti_object_sample/training/velodyne/004139.bin`` (123k
   points; a synthetic scan of the same size when it is absent), one pass;
3. training step (forward, backward, SGD) of ``pointnet2_lite_cls`` on 16 x 1024
   points, eager against ``torch.compile`` of the network: the ratio that
   decides whether ``--compile`` is worth offering for training;
4. end to end, ``pointnet2_lite_cls`` 1 x 1024: the whole call of
   :class:`~pointsam.export.OnnxModel` with the plan in Python
   (:mod:`pointsam.ops`, default backends: fpsample, pykdtree) against the
   end-to-end graph (``num_points=1024``: FPS, kNN and ball query inside ONNX
   Runtime). ``--only-end-to-end`` runs this section alone;
5. ONNX Runtime at one thread, ``pointnet2_lite_cls`` 32 x 1024 and the KITTI
   scan: an export with its BatchNorms kept (``fold_bn=False``) against the
   default, folded export, in alternation. ``--only-fold`` runs it alone.

Each figure is the median of ``--repeat`` runs after a warm-up (compilation and
session creation are excluded and printed apart). Ratios are eager / engine
(> 1: the engine is faster), taken in the same run at the same thread count.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.common import lidar_scan, median_time, paired_times
from pointsam.export import OnnxModel, export_onnx
from pointsam.models import create_model

_KITTI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "shared", "data", "kitti_object_sample", "training",
                      "velodyne", "004139.bin")


def _kitti() -> torch.Tensor:
    if os.path.isfile(_KITTI):
        a = np.fromfile(_KITTI, dtype=np.float32).reshape(-1, 4)
        return torch.from_numpy(a[:, :3].copy())
    return lidar_scan()


def _clouds(b: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(b * n, 3, generator=g) * 2 - 1
    return pos, torch.arange(b).repeat_interleave(n)


def _engines(model: torch.nn.Module, onnx_path: str, threads: int,
             compiled: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
    sess = OnnxModel(onnx_path, threads=threads, model=model)

    def eager(plan: dict, pos: torch.Tensor) -> Any:
        with torch.no_grad():
            return model.network(None, pos, plan)

    def comp(plan: dict, pos: torch.Tensor) -> Any:
        with torch.no_grad():
            return compiled(None, pos, plan)

    def ort(feed: dict, _: Any) -> Any:
        return sess.session.run(["logits"], feed)

    return {"eager": eager, "compile": comp, "onnxruntime": ort, "_sess": sess}


def bench_inference(name: str, cases: list[tuple[str, torch.Tensor, torch.Tensor, int]],
                    threads: list[int], repeat: int) -> list[str]:
    model = create_model(name).eval()
    rows = [f"\n### {name}: network time (ms), plan apart; ratio = eager / engine\n",
            "| case | threads | plan (ms) | eager | compile | ONNX Runtime | "
            "eager/compile | eager/ORT | clouds/s ORT |",
            "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.onnx")
        t0 = time.perf_counter()
        export_onnx(model, path, model_name=name)
        t_export = time.perf_counter() - t0
        t0 = time.perf_counter()
        compiled = torch.compile(model.network, dynamic=False)
        for _, pos, batch, _ in cases:
            plan = model.plan(pos, batch)
            with torch.no_grad():
                compiled(None, pos, plan)  # compile outside the timing
        t_compile = time.perf_counter() - t0
        for t in threads:
            torch.set_num_threads(t)
            eng = _engines(model, path, t, compiled)
            sess = eng.pop("_sess")
            for label, pos, batch, b in cases:
                t_plan = median_time(lambda p=pos, bt=batch: model.plan(p, bt), repeat)
                plan = model.plan(pos, batch)
                feed = sess.inputs(pos, batch)
                times = {k: median_time(lambda f=eng[k], a=(feed if k == "onnxruntime"
                                                              else plan), p=pos:
                                        f(a, p), repeat)
                         for k in ("eager", "compile", "onnxruntime")}
                e = times["eager"]
                rows.append(
                    f"| {label} | {t} | {t_plan * 1e3:.1f} | {e * 1e3:.1f} | "
                    f"{times['compile'] * 1e3:.1f} | {times['onnxruntime'] * 1e3:.1f} | "
                    f"{e / times['compile']:.2f}x | {e / times['onnxruntime']:.2f}x | "
                    f"{b / (t_plan + times['onnxruntime']):.1f} |")
    rows.append(f"\nONNX export {t_export:.1f} s; torch.compile (all cases) "
                f"{t_compile:.1f} s, excluded from the times.")
    return rows


def bench_train(repeat: int, b: int = 16, n: int = 1024) -> list[str]:
    torch.set_num_threads(1)
    pos, batch = _clouds(b, n)
    y = torch.randint(0, 10, (b,))
    out = [f"\n### training step, pointnet2_lite_cls, {b} x {n}, 1 thread\n",
           "| engine | step (ms) | ratio eager / engine |", "|---|---|---|"]
    times = {}
    for engine in ("eager", "compile"):
        torch.manual_seed(0)
        model = create_model("pointnet2_lite_cls").train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        net = torch.compile(model.network, dynamic=False) if engine == "compile" \
            else model.network

        def step(model: Any = model, net: Any = net, opt: Any = opt) -> None:
            plan = model.plan(pos, batch)
            loss = torch.nn.functional.cross_entropy(net(None, pos, plan), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()  # compile
        times[engine] = median_time(step, repeat)
    for engine, t in times.items():
        out.append(f"| {engine} | {t * 1e3:.0f} | {times['eager'] / t:.2f}x |")
    return out


def bench_end_to_end(threads: list[int], repeat: int, n: int = 1024) -> list[str]:
    """Plan in Python + ORT network vs one end-to-end ORT graph, 1 x n points."""
    name = "pointnet2_lite_cls"
    model = create_model(name).eval()
    pos, batch = _clouds(1, n)
    rows = [f"\n### {name}, 1 x {n}: plan in Python + ORT vs end to end in ORT "
            "(ms per cloud, the whole call)\n",
            "| threads | plan (Python) | network (ORT) | plan + network | "
            "end to end (ORT) | ratio |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        net_path, e2e_path = os.path.join(tmp, "net.onnx"), os.path.join(tmp, "e2e.onnx")
        t0 = time.perf_counter()
        export_onnx(model, net_path, model_name=name)
        t_net = time.perf_counter() - t0
        t0 = time.perf_counter()
        export_onnx(model, e2e_path, model_name=name, num_points=n)
        t_e2e = time.perf_counter() - t0
        for t in threads:
            torch.set_num_threads(t)
            split = OnnxModel(net_path, threads=t, model=model)
            e2e = OnnxModel(e2e_path, threads=t)
            split(pos, batch)  # warm-up
            e2e(pos.view(1, n, 3))
            feed = split.inputs(pos, batch)
            t_plan = median_time(lambda s=split: s.inputs(pos, batch), repeat)
            t_run = median_time(lambda s=split, f=feed: s.session.run(["logits"], f),
                                repeat)
            # in alternation: a load that comes and goes hits both alike
            t_split, t_one = paired_times(lambda s=split: s(pos, batch),
                                          lambda s=e2e: s(pos.view(1, n, 3)), repeat)
            rows.append(f"| {t} | {t_plan * 1e3:.1f} | {t_run * 1e3:.1f} | "
                        f"{t_split * 1e3:.1f} | {t_one * 1e3:.1f} | "
                        f"{t_split / t_one:.2f}x |")
    rows.append(f"\nONNX export: network {t_net:.1f} s, end to end {t_e2e:.1f} s. "
                "ratio = (plan + network) / end to end (> 1: end to end faster).")
    return rows


def bench_fold(cases: list[tuple[str, str, torch.Tensor, torch.Tensor | None]],
               repeat: int) -> list[str]:
    """ONNX Runtime at one thread: an export with its BatchNorms kept against the
    default export (folded into the Linear before each), in alternation."""
    import onnxruntime as ort

    torch.set_num_threads(1)
    rows = ["\n### ONNX Runtime, 1 thread: BatchNorm kept vs folded into the Linear "
            "(export_onnx fold_bn=False / True; ms, alternating runs)\n",
            "| model | case | norms kept | folded | ratio |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, label, pos, batch in cases:
            model = create_model(name).eval()
            sess = {}
            for fold in (False, True):
                path = os.path.join(tmp, f"{name}_{fold}.onnx")
                export_onnx(model, path, model_name=name, fold_bn=fold)
                opts = ort.SessionOptions()
                opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
                sess[fold] = ort.InferenceSession(path, opts,
                                                  providers=["CPUExecutionProvider"])
            feed = OnnxModel(path, threads=1, model=model).inputs(pos, batch)
            kept, folded = paired_times(
                lambda s=sess[False], f=feed: s.run(["logits"], f),
                lambda s=sess[True], f=feed: s.run(["logits"], f), repeat)
            rows.append(f"| {name} | {label} | {kept * 1e3:.1f} | {folded * 1e3:.1f} "
                        f"| {kept / folded:.2f}x |")
    return rows


def main(argv: list[str] | None = None) -> None:
    """Run every section and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--only-end-to-end", action="store_true",
                   help="only section 4 (plan in Python vs end to end)")
    p.add_argument("--only-fold", action="store_true",
                   help="only section 5 (BatchNorm kept vs folded)")
    args = p.parse_args(argv)
    big = 4 if args.quick else 32
    pts = 256 if args.quick else 1024
    print(f"# bench.export: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    if args.only_end_to_end:
        for row in bench_end_to_end(args.threads, args.repeat, n=pts):
            print(row, flush=True)
        return
    scan = _kitti()[:20000] if args.quick else _kitti()
    fold_cases = [("pointnet2_lite_cls", f"{big} x {pts}", *_clouds(big, pts)),
                  ("pointnet2_lite_semseg", f"KITTI scan {scan.size(0)}", scan, None)]
    if args.only_fold:
        for row in bench_fold(fold_cases, args.repeat):
            print(row, flush=True)
        return
    cls_cases = [(f"1 x {pts}", *_clouds(1, pts), 1),
                 (f"{big} x {pts}", *_clouds(big, pts), big)]
    for row in bench_inference("pointnet2_lite_cls", cls_cases, args.threads,
                               args.repeat):
        print(row, flush=True)
    sem_cases = [(f"KITTI scan {scan.size(0)}", scan,
                  torch.zeros(scan.size(0), dtype=torch.long), 1)]
    for row in bench_inference("pointnet2_lite_semseg", sem_cases, args.threads,
                               args.repeat):
        print(row, flush=True)
    if not args.skip_train:
        for row in bench_train(args.repeat, b=4 if args.quick else 16, n=pts):
            print(row, flush=True)
    for row in bench_end_to_end(args.threads, args.repeat, n=pts):
        print(row, flush=True)
    for row in bench_fold(fold_cases, args.repeat):
        print(row, flush=True)


if __name__ == "__main__":
    main()
