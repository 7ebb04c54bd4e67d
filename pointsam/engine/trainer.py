r"""The training loop: fit with validation-based model selection, test once.

:class:`Trainer` builds everything from a :class:`~pointsam.engine.config.Config`
(or takes a ready model and datasets), then :meth:`Trainer.fit`:

1. carves a validation split out of the train split (``data.val_fraction``, fixed
   ``data.split_seed``: every run and every rank gets the same carve-out);
2. per epoch: trains (tqdm bar with loss and metric), evaluates on the validation
   split, logs CSV/TensorBoard, saves ``last.pt`` and, when the validation score
   improves, ``best.pt`` (atomic, rank 0 only);
3. at the end loads ``best.pt`` and evaluates the test split **once**
   (``train.votes`` test-time augmentation passes), reported as ``test_*``;
4. writes ``summary.json`` (config, seed, versions, machine, results).

Resume (``resume=True``) restores model, optimiser, scheduler, AMP scaler,
epoch, RNG states, the log history and the training time spent so far from
``last.pt``: on the CPU a resumed run equals an uninterrupted one.

Time budget (``train.time_budget_s`` > 0): before each epoch after the first, the
run stops when the training time so far plus the mean epoch time so far would
exceed the budget (so it never starts an epoch it expects to overrun; the first
epoch always runs). Training time is wall-clock of training, validation and
checkpointing, summed over resumes (the value saved in ``last.pt`` is the one the
rule reads, so a resumed run stops where an uninterrupted one would). Model
selection stays on validation and the test split is still evaluated once;
``summary.json`` records ``time_budget_s``, ``epochs_run`` and ``train_time_s``.

Shuffling uses a :class:`DistributedSampler` whose order depends only on
``(seed, epoch)``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from pointsam.data import split_train_val  # re-exported: its old home

from ._guards import TrainingDiverged, uses_features
from .builders import TransformedDataset, build_datasets, build_model, build_task
from .checkpoint import (
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from .config import Config, config_to_dict
from .distributed import (
    DistInfo,
    ShardSampler,
    all_reduce_sum,
    barrier,
    broadcast_object,
    init_distributed,
)
from .evaluation import (  # re-exported here too
    autocast,
    drop_unused_features,
    evaluate,
    vote_augment,
    worker_errors,
)
from .logger import RunLogger, environment, package_versions
from .rundir import RunDirError, RunLock, acquire_lock, check_fresh, check_writable
from .tasks import Task
from .trainer_state import TrainerState, _underlying, seed_everything

__all__ = ["Trainer", "TrainingDiverged", "RunDirError", "split_train_val", "evaluate",
           "vote_augment", "seed_everything"]





class Trainer(TrainerState):
    """Builds and runs one training run from a :class:`Config`.

    Args:
        cfg: The run's config.
        model: A ready model (default: ``create_model(cfg.model.name, ...)``).
        datasets: Ready datasets ``{"train", "val", "test"}`` (default: built from
            ``cfg.data``; ``"val"`` then comes from the fixed-seed carve-out).
        task: A ready :class:`Task` (default: from the config and dataset).
        resume: Continue from ``out_dir/last.pt``.
        overwrite: What to do when ``out_dir`` holds a previous run and
            ``resume`` is not set: ``False`` refuses (:class:`RunDirError` listing
            its files; what ``pointsam train`` does without ``--overwrite``),
            ``True`` removes its outputs first, ``None`` (the default of the
            Python API) leaves them to be overwritten as they are written.

    Rank 0 checks that ``out_dir`` is writable and holds its OS lock
    (:mod:`~pointsam.engine.rundir`) from construction until :meth:`finish`
    (or an error in :meth:`fit`); another process cannot run into it meanwhile.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        model: nn.Module | None = None,
        datasets: dict[str, Dataset] | None = None,
        task: Task | None = None,
        resume: bool = False,
        overwrite: bool | None = None,
    ) -> None:
        self.cfg = cfg
        self.info: DistInfo
        self.info, self.device = init_distributed(cfg.train.device)
        self.out_dir = Path(cfg.train.out_dir)
        self._lock: RunLock | None = None
        if self.info.is_main:
            check_writable(self.out_dir)
            self._lock = acquire_lock(self.out_dir)
        try:
            if self.info.is_main and overwrite is not None:
                check_fresh(self.out_dir, resume=resume, overwrite=overwrite)
            self._build(cfg, model, datasets, task, resume)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give back the run directory's lock (done by :meth:`finish`)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _build(self, cfg: Config, model: nn.Module | None,
               datasets: dict[str, Dataset] | None, task: Task | None,
               resume: bool) -> None:
        if cfg.train.num_threads > 0:
            torch.set_num_threads(cfg.train.num_threads)
        seed_everything(cfg.train.seed)
        if datasets is None:
            datasets = build_datasets(cfg)
        self.datasets = datasets
        if task is None:
            task = build_task(cfg, _underlying(datasets["train"]))
        self.task = task
        #: the arguments of the model's factory, stored in checkpoints
        self.model_args: dict[str, Any] = dict(cfg.model.args)
        if model is None:
            model, self.model_args = build_model(cfg, task)
        seed_everything(cfg.train.seed + 7919 * self.info.rank)
        self.model = model.to(self.device)
        if not uses_features(self.model):  # samples need not carry x
            for ds in self.datasets.values():
                if isinstance(ds, TransformedDataset):
                    ds.drop_features = True
        self.net: nn.Module = self.model
        if self.info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # SyncBatchNorm runs on CUDA only; on the CPU each rank keeps its own
            # batch statistics (plain DDP behaviour)
            if self.device.type == "cuda":
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            dev_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DDP(self.model, device_ids=dev_ids, find_unused_parameters=True)
        self.optimizer = self._build_optimizer()
        self.scheduler = self._build_scheduler()
        self.amp = cfg.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.epoch = 0  # epochs, or validation rounds of a train.steps run
        self.step = 0  # optimiser steps of a train.steps run
        self.train_time = 0.0  # seconds of training so far, over resumes
        self.stopped_early = False
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.logger = RunLogger(
            self.out_dir, enabled=self.info.is_main, tensorboard=cfg.train.tensorboard
        )
        self._loaders()
        if resume:
            self.resume(self.out_dir / "last.pt")

    # ------------------------------------------------------------------ build
    def _build_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        if o.name == "adamw":
            return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        if o.name == "adam":
            return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
        return torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
        )

    def _build_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        """The one schedule: ``optim.warmup`` epochs (steps with ``train.steps``)
        of torch's ``LinearLR``, then ``optim.scheduler``, in ``SequentialLR``.

        It steps once per epoch, or once per optimiser step with ``train.steps``.
        """
        from torch.optim import lr_scheduler as S

        o, t = self.cfg.optim, self.cfg.train
        length = t.steps or t.epochs
        main: S.LRScheduler
        if o.scheduler == "cosine":
            main = S.CosineAnnealingLR(self.optimizer, T_max=max(1, length - o.warmup),
                                       eta_min=o.min_lr)
        elif o.scheduler == "step":
            main = S.StepLR(self.optimizer, o.step_size, o.gamma)
        else:
            main = S.ConstantLR(self.optimizer, factor=1.0, total_iters=0)
        if o.warmup <= 0:
            return main
        warm = S.LinearLR(self.optimizer, start_factor=1.0 / o.warmup,
                          end_factor=1.0, total_iters=o.warmup)
        return S.SequentialLR(self.optimizer, [warm, main], milestones=[o.warmup])

    def _loaders(self) -> None:
        from torch_geometric.loader import DataLoader

        d, info = self.cfg.data, self.info
        per_rank = max(1, d.batch_size // info.world_size)
        eval_bs = max(1, (d.eval_batch_size or d.batch_size) // info.world_size)
        train = self.datasets["train"]
        self.train_sampler = DistributedSampler(
            train, num_replicas=info.world_size, rank=info.rank, shuffle=True,
            seed=self.cfg.train.seed, drop_last=False,
        )
        drop_last = len(train) // info.world_size > per_rank  # no size-1 BN batches
        self.train_loader = DataLoader(
            train, batch_size=per_rank, sampler=self.train_sampler,
            num_workers=d.num_workers, drop_last=drop_last,
        )
        self.eval_loaders = {}
        for split in ("val", "test"):
            ds = self.datasets.get(split)
            if ds is None or len(ds) == 0:
                continue
            self.eval_loaders[split] = DataLoader(
                ds, batch_size=eval_bs, num_workers=d.num_workers,
                sampler=ShardSampler(len(ds), info.rank, info.world_size),
            )

    def _save(self, name: str) -> Path | None:
        path = None
        if self.info.is_main:
            path = save_checkpoint(self.state_dict(), self.out_dir / name)
        barrier()
        return path

    # -------------------------------------------------------------- loops
    def train_epoch(self) -> dict[str, Any]:
        """One pass over the train split; returns the loss and the train metric."""
        self.train_sampler.set_epoch(self.epoch)
        out = self._train_batches(
            self.train_loader, self.cfg.train.max_batches,
            f"epoch {self.epoch + 1}/{self.cfg.train.epochs}", per_step=False)
        self.scheduler.step()
        return out

    def _train_batches(self, batches: Any, limit: int, desc: str, *,
                       per_step: bool) -> dict[str, Any]:
        """Train on ``batches`` (at most ``limit``; 0: all); the schedule steps
        after each batch when ``per_step`` (``train.steps`` runs)."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        self.net.train()
        metrics = self.task.new_metrics()
        loss_sum = torch.zeros(2, dtype=torch.float64)
        bar = tqdm(
            batches, desc=desc, leave=False, file=sys.stderr,
            total=limit or None,
            disable=not (cfg.train.progress and self.info.is_main),
        )
        for i, data in enumerate(worker_errors(bar)):
            data = drop_unused_features(self.model, data.to(self.device))
            with autocast(self.device, self.amp):
                logits = self.net(data)
            loss = self.task.loss(logits.float(), data)
            if not torch.isfinite(loss):
                where = (f"step {self.step + i + 1}" if per_step else
                         f"epoch {self.epoch + 1}, step {i + 1} (of this epoch)")
                raise TrainingDiverged(
                    f"training diverged: the loss is {float(loss.detach())} at "
                    f"{where}; try a smaller optim.lr (now {cfg.optim.lr:g}), "
                    "optim.grad_clip (e.g. 1.0)"
                    + (" or train.amp=false" if self.amp else "")
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if per_step:
                self.scheduler.step()
            c = self.task.count(data)
            loss_sum += torch.tensor([float(loss.detach()) * c, c], dtype=torch.float64)
            self.task.update(metrics, logits.detach().float(), data)
            if bar.disable is False:  # running loss and metric on the bar
                score = metrics.compute().get(self.task.score_key, float("nan"))
                bar.set_postfix(
                    {
                        "loss": f"{float(loss.detach()):.3f}",
                        self.task.score_key: f"{score:.3f}",
                    }
                )
            if limit and i + 1 >= limit:  # before the next batch is drawn
                break
        metrics.reduce()
        all_reduce_sum(loss_sum)
        out = {
            "loss": float(loss_sum[0] / loss_sum[1]) if loss_sum[1] else float("nan")
        }
        out.update(
            {k: v for k, v in metrics.compute().items() if not isinstance(v, list)}
        )
        return out

    def evaluate(self, split: str = "val", *, votes: int = 1) -> dict[str, Any]:
        """Metrics of the current model on ``val`` or ``test``."""
        if split not in self.eval_loaders:
            raise ValueError(
                f"no {split!r} split to evaluate; have {sorted(self.eval_loaders)}"
            )
        t = self.cfg.train
        return evaluate(
            self.model, self.eval_loaders[split], self.task, self.device,
            votes=votes, amp=self.amp, max_batches=t.max_batches,
            voxel_size=t.voxel_size, chunk_points=t.chunk_points, seed=t.seed,
            progress=t.progress and self.info.is_main, desc=split,
        )

    @property
    def _kept_last(self) -> str:
        """What a run without a validation split keeps (summary and card)."""
        unit = "step" if self.cfg.train.steps else "epoch"
        return f"no validation split, the last {unit} is kept"

    def fit(self, *, stop_after: int | None = None) -> dict[str, Any]:
        """Train to ``train.epochs`` (or stop after ``stop_after`` more epochs).

        Returns:
            The summary dict (also written to ``summary.json`` when finished).
        """
        try:
            return self._fit(stop_after)
        except BaseException:
            self.release()
            raise

    def _fit(self, stop_after: int | None) -> dict[str, Any]:
        t = self.cfg.train
        base, start = self.train_time, self._clock()
        key = self.task.score_key
        done = 0
        stream = self._step_stream() if t.steps else None
        while (self.step < t.steps) if t.steps else (self.epoch < t.epochs):
            if stop_after is not None and done >= stop_after:
                return {"stopped_at_epoch": self.epoch}
            if self._over_budget():
                if self.info.is_main:
                    where = (f"step {self.step}/{t.steps}" if t.steps else
                             f"epoch {self.epoch}/{t.epochs}")
                    print(
                        f"[pointsam] time budget of {t.time_budget_s:.0f} s reached "
                        f"after {where} ({self.train_time:.0f} s)",
                        file=sys.stderr,
                    )
                self.stopped_early = True
                break
            tick = time.time()
            if stream is not None:  # a round of eval_every steps, then validation
                n = min(t.eval_every, t.steps - self.step)
                tr = self._train_batches(
                    stream, n, f"steps {self.step + 1}-{self.step + n}/{t.steps}",
                    per_step=True)
                self.step += n
                validate = True
            else:
                tr = self.train_epoch()
                validate = (self.epoch + 1) % t.eval_every == 0 \
                    or self.epoch + 1 == t.epochs
            self.epoch += 1
            done += 1
            row: dict[str, Any] = {"epoch": self.epoch}
            if t.steps:
                row["step"] = self.step
            row["lr"] = self.optimizer.param_groups[0]["lr"]
            row.update({f"train_{k}": v for k, v in tr.items()})
            improved = False
            if "val" in self.eval_loaders and validate:
                va = self.evaluate("val")
                row.update(
                    {f"val_{k}": v for k, v in va.items() if not isinstance(v, list)}
                )
                score = va.get(key, float("nan"))
                if not math.isnan(score) and score > self.best.get(key, -math.inf):
                    self.best = {
                        "epoch": self.epoch,
                        **({"step": self.step} if t.steps else {}),
                        key: score,
                        "val_loss": va["loss"],
                    }
                    improved = True
            elif "val" not in self.eval_loaders:
                self.best = {
                    "epoch": self.epoch,
                    **({"step": self.step} if t.steps else {}),
                    "note": self._kept_last,
                }
                improved = True
            row["epoch_time_s"] = round(time.time() - tick, 3)
            self.history.append(row)
            self.logger.log_epoch(row, self.history)
            if self.info.is_main:
                msg = " ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in row.items()
                )
                print(f"[pointsam] {msg}", file=sys.stderr, flush=True)
            # rank 0's clock on every rank (one budget decision); saved in last.pt
            self.train_time = float(broadcast_object(base + (self._clock() - start)))
            if improved:
                self._save("best.pt")
            self._save("last.pt")
        return self.finish(train_time=self.train_time)

    def _step_stream(self) -> Any:
        """The train split as an endless stream of batches from step
        ``self.step`` on (:func:`~pointsam.engine.distributed.step_batches`)."""
        from .distributed import step_batches

        d = self.cfg.data
        return step_batches(self.datasets["train"], d.batch_size, self.info,
                            seed=self.cfg.train.seed, step=self.step,
                            num_workers=d.num_workers)

    #: The clock of the time budget (a seam for tests).
    _clock = staticmethod(time.perf_counter)

    def _over_budget(self) -> bool:
        """Would one more epoch, at the mean epoch time so far, overrun the budget?"""
        budget = self.cfg.train.time_budget_s
        if budget <= 0 or self.epoch == 0:
            return False
        return self.train_time + self.train_time / self.epoch > budget

    def finish(self, train_time: float | None = None) -> dict[str, Any]:
        """Load ``best.pt``, evaluate the test split once, write ``summary.json``."""
        t = self.cfg.train
        best_path = self.out_dir / "best.pt"
        if best_path.is_file():
            load_weights(self.model, load_checkpoint(best_path, self.device),
                         best_path, self.cfg.model.name, dict(self.model_args))
        test: dict[str, Any] = {}
        if "test" in self.eval_loaders:
            test = self.evaluate("test", votes=t.votes)
        summary = {
            "config": config_to_dict(self.cfg),
            "seed": t.seed,
            "task": self.task.name,
            "model": self.cfg.model.name,
            "num_parameters": sum(p.numel() for p in self.model.parameters()),
            "dataset_sizes": {
                k: len(v) for k, v in self.datasets.items() if v is not None
            },
            "selection": (
                f"none: {self._kept_last}"
                if "val" not in self.eval_loaders
                else f"best validation {self.task.score_key} ("
                + ("the dataset's own val split)"
                   if getattr(_underlying(self.datasets["train"]), "val_split", None)
                   else f"val carved from train, seed {self.cfg.data.split_seed})")),
            "best": self.best,
            "test": {
                "split": self.cfg.data.test_split,
                "votes": t.votes,
                "evaluated_once": True,
                **test,
            },
            "history": self.history,
            "train_time_s": self.train_time if train_time is None else train_time,
            "time_budget_s": t.time_budget_s,
            "epochs_run": self.epoch,
            **({"unit": "step", "steps_planned": t.steps, "steps_run": self.step}
               if t.steps else {}),
            "stopped_by_time_budget": self.stopped_early,
            "world_size": self.info.world_size,
            "device": str(self.device),
            "versions": package_versions(),
            "machine": environment(),
            "checkpoint": str(best_path),
        }
        self.logger.write_summary(summary)
        self.logger.close()
        self.release()
        return summary
