"""Turn run records (``RunResult.to_dict()``) into the plots and the markdown table.

Runs are grouped by (T, clipping); each group gets four PNGs:

    heatmap_T{T}_{clip}.png   ||dL/dh_t|| over time step x epoch, one panel per cell
    curves_T{T}_{clip}.png    norm against distance from the loss: before training, and the median over training
    clipping_T{T}_{clip}.png  gradient norm (before clipping) per step, clipped steps marked
    loss_T{T}_{clip}.png      test loss against step, with the trivial predictor
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .experiment import results_table
from .plots import plot_clipping, plot_flow_curves, plot_flow_heatmap, plot_learning_curves


def _slug(clipping: str) -> str:
    return "noclip" if clipping == "none" else clipping.replace(" ", "")


def median_flow(record: dict) -> np.ndarray:
    """The median over the measured epochs after the start of ||dL/dh_t|| / ||dL/dh_T||, by distance.

    One measurement can catch a plain RNN in a lucky moment; the median shows its usual state.
    """
    rows = np.array(record["flow"]["heatmap"], dtype=np.float64)
    rows = rows[1:] if len(rows) > 1 else rows
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = rows / rows[:, -1:]
    return np.nanmedian(rel, axis=0)[::-1].copy()


def groups(records: Sequence[dict]) -> dict[tuple[int, str], list[dict]]:
    out: dict[tuple[int, str], list[dict]] = {}
    for r in records:
        out.setdefault((r["config"]["length"], r["clipping"]), []).append(r)
    return out


def write_report(
    records: Sequence[dict], out_dir: Union[str, Path], baseline: Optional[float] = None, title: str = "",
    metric: str = "test MSE", command: str = "",
) -> dict[str, Path]:
    """Write every group's plots, ``results.md`` and ``results.json`` into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for (T, clipping), runs in sorted(groups(records).items()):
        tag = f"T{T}_{_slug(clipping)}"
        what = f"{title} T={T}, clipping: {clipping}".strip()
        with_flow = [r for r in runs if "flow" in r]
        if with_flow:
            paths[f"heatmap_{tag}"] = plot_flow_heatmap(
                {r["config"]["recipe"]: np.array(r["flow"]["heatmap"]) for r in with_flow}, out / f"heatmap_{tag}.png",
                epochs={r["config"]["recipe"]: [e * r["config"]["eval_every"] for e in r["flow"]["epochs"]] for r in with_flow},
                title=f"{what}: gradient reaching each step", ylabel="training step")
            trained = {r["config"]["recipe"]: median_flow(r) for r in with_flow}
            init = {r["config"]["recipe"]: np.array(r["flow"]["by_distance_first"]) for r in with_flow}
            paths[f"curves_{tag}"] = plot_flow_curves(
                trained, out / f"curves_{tag}.png", dashed=init, dashed_label="init",
                title=f"{what}\nsolid: median over training; dashed: before training")
        if any(r.get("batch_norms") for r in runs):
            threshold = runs[0]["config"]["clipnorm"]
            paths[f"clipping_{tag}"] = plot_clipping(
                {r["config"]["recipe"]: [tuple(b) for b in r["batch_norms"]] for r in runs}, out / f"clipping_{tag}.png",
                threshold=threshold, title=what, epoch_label=f"epoch ({runs[0]['config']['eval_every']} steps)")
        paths[f"loss_{tag}"] = plot_learning_curves(
            {r["config"]["recipe"]: tuple(zip(*r["curve"])) for r in runs if r["curve"]}, out / f"loss_{tag}.png",
            baseline=runs[0].get("baseline", baseline), ylabel=metric, title=what)
    table = results_table(records, baseline)
    text = f"# {title}\n\n" if title else ""
    if command:
        text += f"Command: `{command}`\n\n"
    (out / "results.md").write_text(text + table + "\n")
    (out / "results.json").write_text(json.dumps(list(records)))
    paths["results.md"] = out / "results.md"
    paths["results.json"] = out / "results.json"
    return paths
