r"""Atomic, code-free checkpoints and RNG state capture.

A checkpoint is a dict of tensors, plain containers, numbers and strings only,
so it loads with ``torch.load(..., weights_only=True)``: a file that carries
pickled code or objects is refused with :class:`CheckpointError` before anything
in it runs. Saving goes through :func:`pointsam._atomic.atomic_write`: a
temporary file in the same folder, ``fsync``\ ed and renamed over the target
(``os.replace``, atomic on POSIX), so a process killed while saving, or a full
disk, leaves the previous checkpoint intact.

Layout (``format == "pointsam-checkpoint"``, ``version == 1``)::

    {"format", "version", "config": dict, "meta": dict, "model": state_dict,
     "optimizer", "scheduler", "scaler": state dicts, "epoch": int,
     "rng": {"torch", "cuda", "numpy", "python": Tensor}, "history": list[dict],
     "best": dict}
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pointsam._atomic import OutOfSpaceError, atomic_write

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "load_weights",
    "get_rng_state",
    "set_rng_state",
    "FORMAT",
    "VERSION",
]

FORMAT = "pointsam-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, unsafe or not a pointsam one."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (tmp file, fsync, ``os.replace``).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> p = save_checkpoint({"w": torch.ones(2)}, f"{d}/ck.pt")
        >>> load_checkpoint(p, check_format=False)["w"]
        tensor([1., 1.])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_write(path, "wb") as f:
            torch.save(state, f)
    except OutOfSpaceError as e:  # torch: "write failed" / "unexpected pos" too
        raise CheckpointError(f"{e}; free some space and resume with --resume"
                              ) from None
    return path


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    *,
    check_format: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: missing or truncated file, pickled code or objects in it,
            or (with ``check_format``) not a pointsam checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a torch.save archive (a plain or "
            "legacy pickle, a truncated file, or no checkpoint at all); pointsam "
            "never unpickles such files")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # not code: bytes that are no pickle
            raise CheckpointError(
                f"cannot read checkpoint {path} (truncated or "
                f"corrupt): {str(e).splitlines()[-3:]}"
            ) from None
        raise CheckpointError(
            f"refusing to load {path}: it contains pickled code or objects that "
            "weights_only=True does not allow (pointsam checkpoints hold only "
            f"tensors, numbers, strings and plain containers). Detail: {e}"
        ) from None
    except Exception as e:  # RuntimeError, EOFError, OSError, KeyError, ...
        raise CheckpointError(
            f"cannot read checkpoint {path} (truncated or not a torch file): "
            f"{type(e).__name__}: {e}"
        ) from None
    if check_format:
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(
                f"{path} is not a pointsam checkpoint (no format={FORMAT!r} entry)"
            )
        if state.get("version", 0) > VERSION:
            raise CheckpointError(
                f"{path} has checkpoint version {state['version']}; "
                f"this pointsam reads up to {VERSION}"
            )
    return state


def load_weights(model: torch.nn.Module, state: dict[str, Any], path: str | Path,
                 model_name: str, model_args: dict[str, Any]) -> None:
    """``model.load_state_dict(state["model"])``; a mismatch names both models.

    Args:
        model: The model built here (``model_name(**model_args)``).
        state: A loaded checkpoint (its ``meta`` names the model that wrote it).
        path: The checkpoint's path, for the message.
        model_name: The model this side built (config or checkpoint meta).
        model_args: Its factory arguments.

    Raises:
        CheckpointError: the weights do not fit (missing or unexpected keys,
            other shapes), naming the model built here and the one the
            checkpoint was written by.
    """
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        meta = state.get("meta") or {}
        theirs = f"{meta.get('model_name', '?')} {meta.get('model_args', {})}"
        detail = " ".join(str(e).split())[:300]
        raise CheckpointError(
            f"the weights in {path} do not fit the model built here, "
            f"{model_name} {model_args}; the checkpoint was written by {theirs}. "
            f"Use the config the checkpoint was trained with. Detail: {detail}"
        ) from None


#: Config keys a resumed run may change: they do not alter the trajectory.
RESUME_FREE = frozenset({
    "data.num_workers", "data.eval_batch_size", "data.cache", "train.out_dir",
    "train.progress", "train.tensorboard", "train.num_threads", "train.device",
    "train.time_budget_s",
})


def get_rng_state() -> dict[str, torch.Tensor]:
    """Torch, CUDA, NumPy and Python RNG states, as tensors only."""
    np_state = np.random.get_state()
    assert np_state[0] == "MT19937"
    py_version, py_state, py_gauss = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": torch.tensor([np_state[2], np_state[3]], dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_state[4]], dtype=torch.float64),
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_meta": torch.tensor(
            [py_version, 0 if py_gauss is None else 1], dtype=torch.int64
        ),
        "python_gauss": torch.tensor(
            [0.0 if py_gauss is None else py_gauss], dtype=torch.float64
        ),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return out


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    pos, has_gauss = (int(v) for v in state["numpy_pos"])
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            pos,
            has_gauss,
            float(state["numpy_gauss"][0]),
        )
    )
    version, has_py_gauss = (int(v) for v in state["python_meta"])
    gauss = float(state["python_gauss"][0]) if has_py_gauss else None
    random.setstate((version, tuple(int(v) for v in state["python"]), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"].cpu().to(torch.uint8)
        if cuda.size(0) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(list(cuda))
