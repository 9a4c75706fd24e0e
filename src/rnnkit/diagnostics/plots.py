"""PNG plots of gradient flow, clipping and learning curves (matplotlib, Agg, no pyplot state).

Each function takes plain arrays keyed by a run name, writes one PNG and returns its path:

    plot_flow_heatmap    log10 ||dL/dh_t|| / ||dL/dh_T|| over time step x epoch, one panel per run
    plot_flow_curves     ||dL/dh_t|| against distance from the loss, log scale, all runs on one axis
    plot_clipping        global gradient norm before clipping per step, clipped steps marked,
                         and clipping events per epoch
    plot_learning_curves a metric against training step, with a baseline line
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from matplotlib.figure import Figure

PathLike = Union[str, Path]
_TINY = 1e-300


def _save(fig: Figure, path: PathLike, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _log10(a: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0), _TINY))


def _check_runs(runs: Mapping, argument: str) -> None:
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError(f"Argument `{argument}` must be a non-empty mapping of run name -> data, got {runs!r}")


def relative_log_flow(norms: np.ndarray, reverse: bool = False) -> np.ndarray:
    """log10 of each row divided by its value at the last processed step (t = T, or t = 1 if ``reverse``)."""
    logs = _log10(np.atleast_2d(norms))
    ref = logs[:, :1] if reverse else logs[:, -1:]
    return logs - ref


def plot_flow_heatmap(
    maps: Mapping[str, np.ndarray], path: PathLike, epochs: Optional[Mapping[str, Sequence[int]]] = None,
    title: Optional[str] = None, floor: float = -12.0, ylabel: str = "epoch", dpi: int = 90,
) -> Path:
    """Heatmaps of gradient norm over time step (x) and epoch (y), one panel per run.

    Args:
        maps: run name -> (E, T) norms ||dL/dh_t|| in data time order (``GradientFlow.heatmap()``).
        epochs: run name -> the E row labels (default 0..E-1), e.g. ``GradientFlow.epochs``.
        ylabel: what the rows are ("epoch", or "training step" for labels in steps).
        floor: colours are clipped below 10**floor relative to the norm at the loss.
    Colour: log10(||dL/dh_t|| / ||dL/dh_T||) per row, one scale for all panels, so a run
    whose gradient vanishes turns dark towards t = 1 while one that keeps it stays bright.
    """
    _check_runs(maps, "maps")
    n = len(maps)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(5.2 * cols, 2.6 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for ax, (name, norms) in zip(axes.flat, maps.items()):
        raw = relative_log_flow(norms)
        rel = np.clip(raw, floor, 0.5)
        E, T = rel.shape
        labels = list(epochs[name]) if epochs and name in epochs else list(range(E))
        image = ax.imshow(rel, aspect="auto", origin="lower", cmap="magma", vmin=floor, vmax=0.5,
                          extent=(0.5, T + 0.5, -0.5, E - 0.5), interpolation="nearest")
        ticks = np.arange(0, E, max(1, math.ceil(E / 6)))
        ax.set_yticks(ticks, [str(labels[i]) for i in ticks])
        ax.set_xlabel("time step t")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{name}: ||dL/dh_1||/||dL/dh_T|| = {10 ** raw[-1, 0]:.0e} (last row)", fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes, label="log10 ||dL/dh_t|| / ||dL/dh_T||", shrink=0.9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, dpi)


def plot_flow_curves(
    curves: Mapping[str, np.ndarray], path: PathLike, normalize: bool = True, title: Optional[str] = None,
    dashed: Optional[Mapping[str, np.ndarray]] = None, dashed_label: str = "init", dpi: int = 90,
) -> Path:
    """||dL/dh_t|| against distance from the loss (0 = the last processed step), log scale.

    Args:
        curves: run name -> norms ordered by distance (``LayerFlow.by_distance()``), solid lines.
        normalize: divide each curve by its value at distance 0.
        dashed: run name -> a second curve drawn dashed in the same colour (e.g. before training),
            labelled "<name> (<dashed_label>)".
    """
    _check_runs(curves, "curves")
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()

    def prepared(g: np.ndarray) -> np.ndarray:
        g = np.asarray(g, dtype=np.float64)
        if normalize and len(g) and g[0] > 0:
            g = g / g[0]
        return np.maximum(g, _TINY)

    for name, g in curves.items():
        g = prepared(g)
        line = ax.semilogy(np.arange(len(g)), g, label=name, lw=1.6)[0]
        if dashed is not None and name in dashed:
            d = prepared(dashed[name])
            ax.semilogy(np.arange(len(d)), d, ls="--", lw=1.2, color=line.get_color(), label=f"{name} ({dashed_label})")
    ax.set_xlabel("distance from the loss (steps back in time)")
    ax.set_ylabel("||dL/dh_t|| / ||dL/dh_T||" if normalize else "||dL/dh_t||")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, dpi)


def plot_clipping(
    records: Mapping[str, Sequence[tuple[int, int, float, bool]]], path: PathLike, threshold: Optional[float] = None,
    title: Optional[str] = None, max_points: int = 400, epoch_label: str = "epoch", dpi: int = 90,
) -> Path:
    """Gradient norm before clipping per step, and clipping events per epoch.

    Args:
        records: run name -> [(step, epoch, grad_norm, clipped)] (``GradientFlow.batch_norms``).
        threshold: the clipnorm, drawn as a line.
        max_points: longer records are shown as the median and the min-max band of
            ``max_points`` bins of consecutive steps; shorter ones step by step, clipped steps marked x.
    """
    _check_runs(records, "records")
    any_clipped = any(bool(r[3]) for rec in records.values() for r in rec)
    fig = Figure(figsize=(7.0, 5.0 if any_clipped else 3.6), layout="constrained")
    if any_clipped:
        top, bottom = fig.subplots(2, 1, height_ratios=(2, 1))
    else:  # nothing was clipped: the events panel would be a flat line at zero
        top, bottom = fig.subplots(), None
    binned = False
    for name, rec in records.items():
        if not len(rec):
            continue
        step, epoch, norm, clipped = (np.asarray(v) for v in zip(*rec))
        norm = np.where(np.isfinite(norm), norm, np.nan).astype(np.float64)
        clipped = clipped.astype(bool)
        if len(step) > max_points:
            binned = True
            bins = np.array_split(np.arange(len(step)), max_points)
            xs = np.array([step[b].mean() for b in bins])
            with np.errstate(all="ignore"):
                med, lo, hi = (np.array([f(norm[b]) for b in bins]) for f in (np.nanmedian, np.nanmin, np.nanmax))
            line = top.semilogy(xs, np.maximum(med, _TINY), lw=1.0, label=name)[0]
            top.fill_between(xs, np.maximum(lo, _TINY), np.maximum(hi, _TINY), color=line.get_color(), alpha=0.18, lw=0)
        else:
            line = top.semilogy(step, np.maximum(norm, _TINY), lw=0.8, alpha=0.9, label=name)[0]
            top.semilogy(step[clipped], np.maximum(norm[clipped], _TINY), "x", ms=3, color=line.get_color())
        if bottom is not None:
            labels = np.unique(epoch)
            counts = [int(clipped[epoch == e].sum()) for e in labels]
            bottom.plot(labels, counts, "o-", ms=3, color=line.get_color(), label=name)
    if threshold is not None:
        top.axhline(threshold, color="k", ls="--", lw=1, label=f"clipnorm = {threshold:g}")
    top.set_xlabel("training step")
    top.set_ylabel("global grad norm (before clipping)")
    top.grid(True, alpha=0.3)
    top.legend(fontsize=7, ncol=2)
    if bottom is not None:
        bottom.set_xlabel(epoch_label)
        bottom.set_ylabel("clipped steps")
        bottom.grid(True, alpha=0.3)
    note = "median and min-max per bin of steps" if binned else "x = clipped"
    top.set_title(f"{title}  ({note})" if title else note, fontsize=10)
    return _save(fig, path, dpi)


def plot_learning_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: PathLike, baseline: Optional[float] = None,
    ylabel: str = "test loss", logy: bool = True, title: Optional[str] = None, dpi: int = 90,
) -> Path:
    """run name -> (steps, values), one line each; ``baseline`` as a dashed line."""
    _check_runs(curves, "curves")
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()
    for name, (steps, values) in curves.items():
        values = np.asarray(values, dtype=np.float64)
        ax.plot(steps, np.where(np.isfinite(values), values, np.nan), label=name, lw=1.4)
    if baseline is not None:
        ax.axhline(baseline, color="k", ls="--", lw=1, label=f"baseline {baseline:.3g}")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, dpi)
