"""``model.summary()``: Keras's table of layers, output shapes and parameter counts.

    Model: "sequential"
    _________________________________________________________________
     Layer (type)                Output Shape              Param #
    =================================================================
     embedding (Embedding)       (None, None, 64)          64000
    ...
    =================================================================
    Total params: 164,106
    Trainable params: 164,106
    Non-trainable params: 0
    _________________________________________________________________
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from torch import nn


def format_shape(shape: Any) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return "[" + ", ".join(format_shape(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def params_of(module: nn.Module) -> tuple[int, int]:
    """(trainable, non-trainable) counts of a module's materialised parameters."""
    trainable = frozen = 0
    for p in module.parameters():
        if isinstance(p, nn.parameter.UninitializedParameter):
            continue
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    return trainable, frozen


def _is_built(module: nn.Module) -> bool:
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()):
        return False
    return all(getattr(m, "built", True) for m in module.modules())


def _output_shape(model: Any, key: str, layer: nn.Module) -> Any:
    shape = model._output_shapes.get(key)
    declared = getattr(layer, "declared_input_shape", None)
    if shape is None and declared is not None and hasattr(layer, "compute_output_shape"):
        # A layer built from input_shape= before the model saw data.
        shape = layer.compute_output_shape(tuple(declared))
    return shape


def summary_lines(model: Any, line_length: Optional[int] = None, positions: Optional[Sequence[float]] = None) -> list[str]:
    """The summary table as a list of lines; functional models get Keras's "Connected to" column."""
    rows: list[tuple[str, ...]] = []
    if hasattr(model, "_summary_rows"):
        rows = model._summary_rows()
        header: tuple[str, ...] = ("Layer (type)", "Output Shape", "Param #", "Connected to")
        line_length = line_length or 98
        positions = list(positions or (0.33, 0.55, 0.67, 1.0))
    else:
        for key, layer in model._modules.items():
            name = getattr(layer, "name", key)
            kind = type(layer).__name__
            shape = format_shape(_output_shape(model, key, layer)) if _is_built(layer) else "?"
            count = f"{sum(params_of(layer))}" if _is_built(layer) else "0 (unbuilt)"
            rows.append((f"{name} ({kind})", shape, count))
        header = ("Layer (type)", "Output Shape", "Param #")
        line_length = line_length or 65
        positions = list(positions or (0.45, 0.85, 1.0))
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    # Widen a column rather than cut a long name or shape.
    widths = [positions[0]] + [b - a for a, b in zip(positions, positions[1:])]
    for row in (header, *rows):
        widths = [max(w, len(cell) + 3) for w, cell in zip(widths, row)]
    total_width = sum(widths)

    def fmt(row: Sequence[str]) -> str:
        return (" " + row[0].ljust(widths[0] - 1) + "".join(c.ljust(w) for c, w in zip(row[1:], widths[1:]))).rstrip()

    trainable, frozen = params_of(model)
    lines = [f'Model: "{model.name}"', "_" * total_width, fmt(header), "=" * total_width]
    for i, row in enumerate(rows):
        lines.append(fmt(row))
        lines.append("_" * total_width if i < len(rows) - 1 else "=" * total_width)
    if not rows:
        lines.append("=" * total_width)
    lines += [
        f"Total params: {trainable + frozen:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {frozen:,}",
        "_" * total_width,
    ]
    return lines


def print_summary(model: Any, line_length: Optional[int] = None, positions: Optional[Sequence[float]] = None,
                  print_fn: Optional[Callable[[str], Any]] = None) -> None:
    if not model.built and getattr(model, "_input_shape", None) is not None:
        model.build()
    for line in summary_lines(model, line_length, positions):
        (print_fn or print)(line)
