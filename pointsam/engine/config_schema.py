r"""The sections of a training config as typed dataclasses (re-exported by
:mod:`pointsam.engine.config`, which loads, checks and compares them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelConfig", "DataConfig", "OptimConfig", "TrainConfig", "Config"]


@dataclass
class ModelConfig:
    """Which model to build: ``create_model(name, **args)``.

    Attributes:
        name: A registered model name (``pointsam.models.list_models()``).
        args: Keyword overrides for the model factory (``attention``, ``k``, ...).
            ``num_classes`` (and ``num_parts``/``num_categories`` for part
            segmentation) are filled from the dataset when not given.
    """

    name: str = "pointnet2_lite_cls"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Which dataset and how it is batched.

    Attributes:
        name: One of ``modelnet10``, ``modelnet40``, ``shapenetpart``,
            ``semantickitti``, ``synthetic_shapes``, ``synthetic_parts``,
            ``synthetic_lidar``, ``lidar_frames`` (labelled LiDAR frames:
            crops to train, a held-out region to validate, whole frames to
            test; :class:`~pointsam.data.LidarFrames`).
        root: Dataset folder (``None``: the class's default / ``POINTSAM_DATA``).
        args: Extra keyword arguments for the dataset class.
        num_points: Points per sample after fixed-size sampling (0 keeps all).
        augment: Random rotation about z, scaling and jitter in training.
        val_fraction: Share of the train split carved out for model selection.
        split_seed: Seed of that carve-out (fixed, so every run agrees).
        batch_size: Global batch size (divided over DDP ranks).
        eval_batch_size: Batch size at evaluation (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        test_split: The split evaluated once at the end.
        cache: Keep loaded / generated samples in memory (before augmentation).
    """

    name: str = "synthetic_shapes"
    root: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    num_points: int = 1024
    augment: bool = True
    val_fraction: float = 0.1
    split_seed: int = 0
    batch_size: int = 16
    eval_batch_size: int | None = None
    num_workers: int = 0
    test_split: str = "test"
    cache: bool = True


@dataclass
class OptimConfig:
    r"""Optimiser, learning-rate schedule and loss options.

    Attributes:
        name: ``adamw``, ``adam`` or ``sgd``.
        lr: Peak learning rate.
        weight_decay: Decoupled (AdamW) or L2 weight decay.
        momentum: SGD momentum.
        scheduler: ``cosine`` (to ``min_lr`` over all epochs, or all steps with
            ``train.steps``), ``step`` or ``none``.
        warmup: Linear warm-up length before the scheduler, in epochs (in steps
            with ``train.steps``): the rate rises from ``lr / warmup`` to ``lr``
            (torch's ``LinearLR`` then the scheduler, in ``SequentialLR``).
            (0: none)
        step_size: Epochs between decays for ``step``.
        gamma: Decay factor for ``step``.
        min_lr: Final learning rate for ``cosine``.
        grad_clip: Max gradient norm (0: off).
        label_smoothing: Cross-entropy label smoothing.
        class_weights: Semantic segmentation's loss weights: ``none``, or
            ``inverse_sqrt``: :math:`w_c \propto n_c^{-1/2}` over the labelled
            points :math:`n_c` of the train split (the dataset's
            ``class_counts()``), mean 1 over the classes seen, at most 10, 0 for
            a class never seen.
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "cosine"
    step_size: int = 20
    gamma: float = 0.5
    min_lr: float = 1e-5
    grad_clip: float = 0.0
    label_smoothing: float = 0.0
    warmup: int = 0
    class_weights: str = "none"


@dataclass
class TrainConfig:
    """The run itself.

    Attributes:
        task: ``cls``, ``partseg`` or ``semseg`` (default: from the dataset).
        epochs: Training epochs.
        steps: Train for this many optimiser steps instead of epochs (0: use
            ``epochs``; setting both is an error). The train split is drawn as
            one endless shuffled stream (a new order per pass, a function of the
            seed), ``eval_every`` counts steps between validations, the schedule
            steps once per step, and a resume continues at the exact step.
        seed: Seed of weights, shuffling and augmentation.
        out_dir: Where checkpoints, logs and the summary go.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        amp: Automatic mixed precision (CUDA only; ignored on the CPU).
        max_batches: Batches per epoch and per evaluation (0: all); for smoke runs.
        eval_every: Validate every this many epochs (steps with ``steps``), and
            after the last.
        votes: Test-time augmentation passes at the final test evaluation
            (objects: random anisotropic scales; whole scans: turns about z,
            mirrored on odd passes).
        ignore_index: Label ignored by the semantic-segmentation loss and metrics.
        voxel_size: Whole-scan semseg evaluation: voxel edge in metres (0: off).
        chunk_points: Whole-scan semseg evaluation: max points per chunk (0: off).
        time_budget_s: Training-time budget in seconds (0: off): no epoch starts
            when the time so far plus the mean epoch time so far would exceed
            it (the first always runs). Counts training, validation and
            checkpoints, summed over resumes; selection stays on validation and
            the test split is evaluated once. For equal-compute comparisons.
        num_threads: torch intra-op threads (0: torch's default). On a busy
            shared CPU, 1 thread avoids OpenMP spin contention (often 5x faster).
        progress: Show a tqdm bar per epoch.
        tensorboard: Write TensorBoard scalars.
    """

    task: str | None = None
    epochs: int = 10
    steps: int = 0
    seed: int = 0
    out_dir: str = "runs/default"
    device: str = "auto"
    amp: bool = True
    max_batches: int = 0
    eval_every: int = 1
    votes: int = 1
    ignore_index: int = -1
    voxel_size: float = 0.0
    chunk_points: int = 0
    time_budget_s: float = 0.0
    num_threads: int = 0
    progress: bool = True
    tensorboard: bool = True


@dataclass
class Config:
    """A whole training config (see the module docstring)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
