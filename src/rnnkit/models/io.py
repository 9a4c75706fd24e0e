"""Saving the ready-made models: ``<path>.safetensors`` (weights) + ``<path>.json`` (architecture).

The weights file is an rnnkit weights file (``rnnkit.saving.save_weights``: safetensors
with a checksum, never pickled). The JSON holds the class name, its ``get_config()``
and any JSON-able extras a task needs to use the model again (vocabularies, scaling,
metrics)::

    {"format": "rnnkit.models", "version": 1, "class_name": "Seq2Seq",
     "config": {...}, "extras": {...}}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

from torch import nn

from ..keras import saving

__all__ = ["save_model", "load_model", "model_classes"]

FORMAT, VERSION = "rnnkit.models", 1
PathLike = Union[str, os.PathLike]


def model_classes() -> dict[str, type]:
    """The classes ``load_model`` can rebuild, by name."""
    from . import ARCHITECTURES

    return {cls.__name__: cls for cls in ARCHITECTURES}


def _paths(path: PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def save_model(model: nn.Module, path: PathLike, **extras: Any) -> tuple[Path, Path]:
    """Write ``model`` to ``path.safetensors`` and ``path.json``; returns both paths.

    ``extras`` are stored in the JSON as they are (they must be JSON-able).
    """
    name = type(model).__name__
    if name not in model_classes():
        raise TypeError(f"save_model saves rnnkit.models architectures ({sorted(model_classes())}), got {name}; "
                        "use rnnkit.saving for Sequential models")
    weights, config = _paths(path)
    try:
        text = json.dumps({"format": FORMAT, "version": VERSION, "class_name": name, "config": model.get_config(),
                           "extras": extras}, indent=1)
    except TypeError as e:
        raise TypeError(f"save_model: `extras` must be JSON-able ({e})") from None
    saving.save_weights(model, weights)
    config.write_text(text + "\n")
    return weights, config


def load_model(path: PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model written by ``save_model`` -> (model in eval mode, extras)."""
    weights, config = _paths(path)
    for p in (weights, config):
        if not p.is_file():
            raise FileNotFoundError(f"no saved model at {str(p)!r} (save_model writes <path>.safetensors and <path>.json)")
    try:
        data = json.loads(config.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(config)!r} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{str(config)!r} is not an rnnkit.models file (no \"format\": \"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise ValueError(f"{str(config)!r} has format version {data.get('version')!r}; this rnnkit reads {VERSION}")
    classes = model_classes()
    cls = classes.get(data.get("class_name"))
    if cls is None:
        raise ValueError(f"{str(config)!r}: unknown model class {data.get('class_name')!r}; expected one of {sorted(classes)}")
    try:
        model = cls.from_config(data["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{str(config)!r}: cannot rebuild {cls.__name__} from its config ({type(e).__name__}: {e})") from None
    saving.load_weights(model, weights)
    model.eval()
    return model, data.get("extras", {})
