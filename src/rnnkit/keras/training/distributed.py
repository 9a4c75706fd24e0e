"""Data-parallel training over processes: ``fit(..., distributed=True)``, launched by torchrun.

    torchrun --nproc_per_node 2 train.py          # train.py calls model.fit(..., distributed=True)
    rnnkit train ... --nproc 2                    # the CLI starts torchrun itself (see ``launch``)

Every process holds the whole data set and the same model. ``fit`` then:

* joins the process group that torchrun describes (gloo, CPU) unless one exists;
* wraps the model in ``torch.nn.parallel.DistributedDataParallel``, which copies rank 0's
  weights to every process and all-reduces the gradients during ``backward``;
* takes rank 0's sample order each epoch (so the global batches are those of a
  single-process run seeded like rank 0) and gives process r the samples
  ``batch[r::world]`` of each global batch of ``batch_size`` samples: disjoint shards;
* weights each process's loss by its share of the global batch, counted the way the loss
  averages (samples, or unmasked time steps when the loss is masked), so the averaged
  gradient is the gradient of the global batch's loss even when shards differ in size.
  A process left without samples (a last batch smaller than the number of processes)
  runs one sample with weight 0, so that every process takes part in each all-reduce;
* makes all processes agree on the NaN/inf guard's decision (a non-finite loss anywhere
  skips the step everywhere; gradient norms are taken after the all-reduce, so they agree);
* sums the epoch's loss and metric accumulators over the processes, so the epoch logs
  are those of the global batch; every process runs the whole validation set.

The result equals single-process training on the same global batches up to the order of
floating-point sums (``tests/test_distributed.py``: float64, 1e-10). Dropout draws
different masks on each process, as in any data-parallel training. Checkpoints
(``checkpoint_dir``) are written by rank 0 into a directory all processes can read, and
hold every process's RNG state.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from typing import Any, Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# Set by ``launch`` (``rnnkit train --nproc N``): fit(distributed=None) then means True.
LAUNCHED = "RNNKIT_DISTRIBUTED"


def requested(distributed: object) -> bool:
    """fit's ``distributed``: True/False as given; None means "started by ``launch``"."""
    if distributed is None:
        return os.environ.get(LAUNCHED) == "1"
    if not isinstance(distributed, bool):
        raise ValueError(f"Received an invalid value for argument `distributed`, expected True, False or None, "
                         f"got {distributed!r}")
    return distributed


class _Forward(nn.Module):
    """What DDP wraps: the model's forward that also returns the Keras mask."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Any) -> tuple[Any, Optional[Tensor]]:
        return self.model._call_with_mask(x)


class Group:
    """This process's place in a data-parallel ``fit``: rank, world size, and the collective steps."""

    def __init__(self, model: nn.Module, trainer: Any, created: bool) -> None:
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.trainer, self.created = trainer, created
        self.placeholder = False  # this process has no sample in the current global batch
        self.ddp = nn.parallel.DistributedDataParallel(_Forward(model))
        trainer.forward, trainer.shard = self.ddp, self

    # -- data -------------------------------------------------------------------------------

    def same_order(self, order: Tensor) -> Tensor:
        """Rank 0's sample order for the epoch, on every process."""
        order = order.contiguous()
        dist.broadcast(order, src=0)
        return order

    def shard(self, index: Tensor) -> Tensor:
        """Samples ``index[rank::world]`` of a global batch (one placeholder sample if none)."""
        local = index[self.rank :: self.world]
        self.placeholder = len(local) == 0
        self.global_batch, self.local_batch = len(index), max(len(local), 1)
        return index[:1] if self.placeholder else local

    # -- one step ---------------------------------------------------------------------------

    def agree(self, finite: bool, y_pred: Any, mask: Optional[Tensor], weight: float) -> tuple[bool, float, float]:
        """All processes' verdict on the loss, this process's loss weight, and its weight in
        the epoch's running loss.

        The DDP all-reduce averages gradients over the processes, so a process whose loss
        counts n_r of the global batch's N terms is weighted ``share = n_r * world / N``. The
        running loss weighs batches by their samples: a single process adds the global batch's
        loss with ``weight`` (its samples); its parts add up to it with ``weight * share / world``
        taken over the global batch.
        """
        count = 0.0 if self.placeholder else _loss_terms(y_pred, mask)
        t = torch.tensor([0.0 if finite else 1.0, count], dtype=torch.float64)
        dist.all_reduce(t)
        total = float(t[1])
        share = count * self.world / total if total > 0 else 0.0
        weight = weight * self.global_batch / self.local_batch * share / self.world
        return float(t[0]) == 0.0, share, weight

    def reduce_metrics(self, trainer: Any) -> None:
        """Sum the epoch's running totals over the processes, so results describe the global batches."""
        holders = [trainer.loss_tracker] + [m for m in (trainer.metrics.metrics or [])
                                            + (trainer.weighted_metrics.metrics or []) if _is_mean(m)]
        values = torch.zeros(2 * len(holders), dtype=torch.float64)
        for i, m in enumerate(holders):
            values[2 * i], values[2 * i + 1] = float(m.total), float(m.count)
        dist.all_reduce(values)
        for i, m in enumerate(holders):
            m.total, m.count = float(values[2 * i]), float(values[2 * i + 1])

    # -- checkpoints ------------------------------------------------------------------------

    def barrier(self) -> None:
        dist.barrier()

    def gather_rng(self, torch_state: Tensor, other: dict[str, Any]) -> tuple[list[Tensor], list[dict[str, Any]]]:
        """Every process's RNG states (for rank 0 to write into the checkpoint)."""
        states = [torch.empty_like(torch_state) for _ in range(self.world)]
        dist.all_gather(states, torch_state.contiguous())
        data = torch.frombuffer(bytearray(json.dumps(other).encode()), dtype=torch.uint8)
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world)]
        dist.all_gather(sizes, torch.tensor([len(data)], dtype=torch.int64))
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros(longest, dtype=torch.uint8)
        padded[: len(data)] = data
        blobs = [torch.empty(longest, dtype=torch.uint8) for _ in range(self.world)]
        dist.all_gather(blobs, padded)
        others = [json.loads(bytes(b[: int(s.item())].tolist()).decode()) for b, s in zip(blobs, sizes)]
        return states, others

    def detach(self) -> None:
        self.trainer.forward = self.trainer.shard = None
        self.ddp = None  # its reducer holds the process group
        if self.created:
            dist.barrier()
            dist.destroy_process_group()


def attach(model: nn.Module, trainer: Any, batch_size: int) -> Group:
    """Join (or reuse) the process group and set ``trainer`` up for data-parallel steps."""
    if not dist.is_available():
        raise ValueError("fit(distributed=True) needs torch.distributed, which this torch build does not have")
    created = False
    if not dist.is_initialized():
        missing = [k for k in _TORCHRUN_ENV if k not in os.environ]
        if missing:
            raise ValueError(
                "fit(distributed=True) must run in processes started by torchrun (torchrun --nproc_per_node N "
                f"script.py, or rnnkit train ... --nproc N); the environment lacks {', '.join(missing)}"
            )
        dist.init_process_group("gloo")
        created = True
    # DDP's hint that a gradient's memory layout differs from its bucket (a transposed matmul
    # gradient) is about speed, not correctness, and would print on every run.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    world = dist.get_world_size()
    if batch_size < world:
        raise ValueError(f"Argument `batch_size` is the global batch, split over {world} processes, so it must be "
                         f"at least {world}; got {batch_size}")
    return Group(model, trainer, created)


def _loss_terms(y_pred: Any, mask: Optional[Tensor]) -> float:
    """How many terms the loss averages over, as ``rnnkit.losses.reduce_values`` counts them:
    the unmasked steps when the mask fits the per-sample values (y_pred less its last axis),
    else the samples."""
    if isinstance(y_pred, Tensor) and mask is not None and y_pred.dim() > mask.dim() \
            and tuple(mask.shape) == tuple(y_pred.shape[: mask.dim()]):
        return float(mask.sum())
    first = y_pred[0] if isinstance(y_pred, (tuple, list)) else y_pred
    return float(first.shape[0])


def _is_mean(metric: Any) -> bool:
    return isinstance(getattr(metric, "total", None), float) and isinstance(getattr(metric, "count", None), (int, float))


# -- launching ----------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_command(nproc: int, args: Sequence[str], port: Optional[int] = None) -> list[str]:
    """``python -m torch.distributed.run`` for ``nproc`` processes on this machine running ``args``
    (a script path or ``-m module`` and its arguments)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"Received an invalid value for argument `nproc`, expected a positive integer, got {nproc!r}")
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--nnodes", "1",
            "--master_addr", "127.0.0.1", "--master_port", str(port or free_port()), *args]


def launch(nproc: int, args: Sequence[str]) -> int:
    """Run ``args`` in ``nproc`` processes under torchrun, where ``fit`` trains data-parallel
    by default; returns torchrun's exit code."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), LAUNCHED: "1"}
    return subprocess.call(torchrun_command(nproc, args), env=env)


def without_option(argv: Sequence[str], option: str) -> list[str]:
    """``argv`` less ``option VALUE`` and ``option=VALUE``."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == option:
            skip = True
        elif not item.startswith(option + "="):
            out.append(item)
    return out
