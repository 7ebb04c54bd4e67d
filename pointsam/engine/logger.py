r"""Run logs: CSV per epoch, TensorBoard scalars, a JSON summary, environment facts.

Only rank 0 writes (``enabled=False`` elsewhere). The CSV is rewritten from the
full history at every epoch, so a resumed run (whose history comes back from the
checkpoint) ends with exactly the rows of an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from pointsam._atomic import atomic_write, atomic_write_text

__all__ = ["RunLogger", "environment", "package_versions"]

_PACKAGES = (
    "pointsam",
    "torch",
    "torch_geometric",
    "numpy",
    "scipy",
    "open3d",
    "fpsample",
    "h5py",
    "pyyaml",
    "tqdm",
    "tensorboard",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of pointsam and its dependencies (``None``: absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            try:
                out[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                out[name] = None
    return out


def environment() -> dict[str, Any]:
    """The machine: OS, CPU, core count, threads, CUDA devices."""
    env: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "argv": list(sys.argv),
    }
    if torch.cuda.is_available():
        env["cuda_devices"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
        env["cuda_version"] = torch.version.cuda
    return env


def _clean(v: Any) -> Any:
    """JSON-safe: NaN/inf become None, tensors become lists."""
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


class RunLogger:
    """Writes ``metrics.csv``, TensorBoard events and ``summary.json`` into ``out_dir``.

    Args:
        out_dir: Run folder.
        enabled: False on DDP ranks other than 0.
        tensorboard: Also write TensorBoard scalars (``out_dir/tb``).
    """

    def __init__(
        self, out_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True
    ) -> None:
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self._tb: Any = None
        if enabled:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # pragma: no cover - tensorboard missing
                    print(
                        "pointsam: tensorboard not installed; no TensorBoard logs",
                        file=sys.stderr,
                    )
                else:
                    self._tb = SummaryWriter(str(self.out_dir / "tb"))

    def log_epoch(self, row: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Record one epoch's scalars (``row`` is the last item of ``history``)."""
        if not self.enabled:
            return
        if self._tb is not None:
            step = int(row.get("epoch", len(history)))
            for k, v in row.items():
                if (
                    k != "epoch"
                    and isinstance(v, (int, float))
                    and not isinstance(v, bool)
                ):
                    self._tb.add_scalar(k.replace("_", "/", 1), v, step)
            self._tb.flush()
        self.write_csv(history)

    def write_csv(self, history: list[dict[str, Any]]) -> None:
        if not self.enabled or not history:
            return
        keys: list[str] = []
        for r in history:
            keys += [
                k for k in r if k not in keys and not isinstance(r[k], (list, dict))
            ]
        with atomic_write(self.out_dir / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            for r in history:
                w.writerow({k: r.get(k, "") for k in keys})

    def write_summary(self, summary: dict[str, Any]) -> Path | None:
        """Write ``summary.json`` (config, seed, versions, machine, results)."""
        if not self.enabled:
            return None
        path = self.out_dir / "summary.json"
        atomic_write_text(path, json.dumps(_clean(summary), indent=2,
                                           sort_keys=False) + "\n")
        return path

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
