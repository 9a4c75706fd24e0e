"""Save and load models as one safetensors file: weights as tensors, the rest as JSON.

File layout (a standard safetensors file, readable by any safetensors tool):
    tensors                  the model's ``state_dict``
    __metadata__["format"]   "rnnkit.model" (``save``) or "rnnkit.weights" (``save_weights``)
    __metadata__["version"]  format version, "1"
    __metadata__["config"]   JSON: {"class_name": "Sequential", "config": {...layers...},
                             "compile": {...} or null}  (models only)
    __metadata__["sha256"]   digest of the tensor bytes, so a corrupted file is refused

Nothing is ever unpickled: a file that is not one of ours, or is damaged, raises a
ValueError that says so. Only ``Sequential`` models have an architecture that is
data; a subclassed ``Model`` is Python code, so it saves its weights only.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

FORMAT_VERSION = "1"
MODEL_FORMAT = "rnnkit.model"
WEIGHTS_FORMAT = "rnnkit.weights"
CHECKPOINT_FORMAT = "rnnkit.checkpoint"  # fit(checkpoint_dir=...): see rnnkit.training.checkpoint
_KINDS = {MODEL_FORMAT: "model", WEIGHTS_FORMAT: "weights", CHECKPOINT_FORMAT: "checkpoint"}
_MAX_HEADER = 100 * 1024 * 1024

PathLike = Union[str, os.PathLike]


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    from .layers.base import is_built

    state = model.state_dict()
    if not is_built(model):
        raise ValueError(f"Model {getattr(model, 'name', '')!r} is not built yet, so it has no weights to save: "
                         "call build(input_shape), fit, or the model on a batch first")
    # Cloned so tied weights do not share storage, which safetensors refuses.
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _write(path: PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    draft = st_save(tensors, metadata=metadata)
    metadata = {**metadata, "sha256": _digest(draft)}
    blob = st_save(tensors, metadata=metadata)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"Cannot save to {str(path)!r}: it is a directory; give a file path such as 'model.safetensors'")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash never leaves a half-written file under the real name.
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _digest(blob: bytes) -> str:
    (n,) = struct.unpack("<Q", blob[:8])
    return hashlib.sha256(blob[8 + n :]).hexdigest()


def _read(path: PathLike, expected: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of an rnnkit file; ValueError for anything else."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory; rnnkit models are single files")
    blob = path.read_bytes()
    what = f"{str(path)!r} is not an rnnkit {_KINDS[expected]} file"
    if len(blob) < 8:
        raise ValueError(f"{what}: it is only {len(blob)} bytes long")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > min(_MAX_HEADER, len(blob) - 8):
        raise ValueError(f"{what}: no safetensors header (declared header length {n} does not fit in {len(blob)} bytes)")
    try:
        header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{what}: its header is not valid JSON ({e})") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt not in _KINDS:
        raise ValueError(f"{what}: it has no rnnkit metadata (a safetensors or other file written by something else)")
    if fmt != expected:
        hint = ("it holds weights only (save_weights); build the model in code and call model.load_weights(path)"
                if fmt == WEIGHTS_FORMAT else "it is a training checkpoint (fit(checkpoint_dir=...)); continue with "
                "fit(..., checkpoint_dir=..., resume=True)" if fmt == CHECKPOINT_FORMAT else
                "it is a full model (save); use rnnkit.saving.load_model(path), or its weights load with load_weights too")
        if not (fmt == MODEL_FORMAT and expected == WEIGHTS_FORMAT):
            raise ValueError(f"{what}: {hint}")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{what}: format version {meta.get('version')!r}, this rnnkit reads version {FORMAT_VERSION}")
    if meta.get("sha256") != hashlib.sha256(blob[8 + n :]).hexdigest():
        raise ValueError(f"{str(path)!r} is corrupted: its tensor data does not match the checksum written with it")
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as e:
        raise ValueError(f"{str(path)!r} is corrupted: safetensors cannot read it ({e})") from None
    return tensors, meta


def save_model(model: Any, filepath: PathLike) -> None:
    """Write a Sequential model's architecture, weights and compile settings to one file."""
    from .models.sequential import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(
            f"save() stores the architecture as data, which only Sequential models have; {type(model).__name__} "
            "defines it in Python code (call), which rnnkit will not pickle. Use model.save_weights(path), and to "
            "restore, construct the model in code and call model.load_weights(path)"
        )
    config = {"class_name": "Sequential", "config": model.get_config(), "compile": None}
    trainer = getattr(model, "_trainer", None)
    if trainer is not None:
        config["compile"] = trainer.compile_config()
        if config["compile"] is None:
            warnings.warn("The compile settings include user code (a callable loss/metric or a torch optimizer); "
                          "they are not saved. Call compile() again after loading", stacklevel=3)
    try:
        text = json.dumps(config)
    except TypeError as e:
        raise TypeError(f"save(): a layer's get_config() is not JSON-serialisable ({e})") from None
    metadata = {"format": MODEL_FORMAT, "version": FORMAT_VERSION, "config": text}
    _write(filepath, _tensors(model), metadata)


# What a damaged or hand-edited config can raise on its way back into layers and compile settings.
_CONFIG_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RuntimeError,
                  NotImplementedError)


def _json_field(meta: dict[str, str], key: str, filepath: PathLike, what: str) -> Any:
    try:
        return json.loads(meta[key])
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{str(filepath)!r} is corrupted: its {what} is not valid JSON ({e})") from None


def load_model(filepath: PathLike, compile: bool = True) -> Any:
    """Rebuild a model saved with ``model.save(path)``; predictions are identical to the saved model's."""
    from .models.sequential import Sequential

    tensors, meta = _read(filepath, MODEL_FORMAT)
    config = _json_field(meta, "config", filepath, "model config") if "config" in meta else None
    if not isinstance(config, dict) or config.get("class_name") != "Sequential" or not isinstance(config.get("config"), dict):
        name = config.get("class_name") if isinstance(config, dict) else None
        raise ValueError(f"{str(filepath)!r}: unknown model class {name!r}, or no layer config")

    def rebuild() -> Any:
        try:
            return Sequential.from_config(config["config"])
        except _CONFIG_ERRORS as e:
            raise ValueError(f"{str(filepath)!r}: cannot rebuild the model from its config ({type(e).__name__}: {e})") from None

    # First on the meta device, which allocates nothing: a config that no longer matches the
    # weights (say a damaged `units`) is refused before it can ask for gigabytes.
    with torch.device("meta"):
        _check_fit(rebuild(), tensors, filepath)
    model = rebuild()
    _load_state(model, tensors, filepath)
    if compile and config.get("compile"):
        try:
            _compile_from(model, config["compile"])
        except _CONFIG_ERRORS as e:
            raise ValueError(f"{str(filepath)!r}: cannot compile the model from its saved settings "
                             f"({type(e).__name__}: {e}); load it with compile=False") from None
    return model


def _compile_from(model: Any, data: dict[str, Any]) -> None:
    from . import losses, optimizers

    settings = {k: data[k] for k in ("clipnorm", "clipvalue", "global_clipnorm", "jit_compile", "steps_per_execution")
                if k in data}
    model.compile(optimizer=optimizers.deserialize(data["optimizer"]), loss=losses.deserialize(data["loss"]),
                  metrics=data.get("metrics"), **settings)


def _check_fit(model: torch.nn.Module, tensors: dict[str, torch.Tensor], filepath: PathLike) -> None:
    """The file holds exactly the model's weights, with the same shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ValueError(f"{str(filepath)!r} does not fit model {getattr(model, 'name', '')!r}: missing weights "
                         f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected weights "
                         f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    for k, v in own.items():
        if isinstance(v, torch.nn.parameter.UninitializedParameter):
            continue
        if tuple(v.shape) != tuple(tensors[k].shape):
            raise ValueError(f"{str(filepath)!r} does not fit model {getattr(model, 'name', '')!r}: weight {k!r} has "
                             f"shape {tuple(tensors[k].shape)} in the file and {tuple(v.shape)} in the model")


def _load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], filepath: PathLike) -> None:
    _check_fit(model, tensors, filepath)
    model.load_state_dict(tensors)


def save_weights(model: Any, filepath: PathLike) -> None:
    """Write the model's weights (its ``state_dict``) to a safetensors file."""
    metadata = {"format": WEIGHTS_FORMAT, "version": FORMAT_VERSION}
    shape = getattr(model, "_build_input_shape", None)
    if shape is not None:
        metadata["build_input_shape"] = json.dumps(list(shape))
    _write(filepath, _tensors(model), metadata)


def load_weights(model: Any, filepath: PathLike) -> None:
    """Load weights written by ``save_weights`` (or ``save``) into a model of the same architecture.

    A model that has not seen data yet is built first from the input shape stored in the file.
    """
    from .models.sequential import Sequential

    tensors, meta = _read(filepath, WEIGHTS_FORMAT)
    shape: Optional[Any] = None
    if "build_input_shape" in meta:
        shape = _json_field(meta, "build_input_shape", filepath, "input shape")
    elif meta.get("format") == MODEL_FORMAT and "config" in meta:
        config = _json_field(meta, "config", filepath, "model config")
        inner = config.get("config") if isinstance(config, dict) else None
        shape = inner.get("build_input_shape") if isinstance(inner, dict) else None
    if not getattr(model, "built", True) and shape is not None:
        if not isinstance(shape, list) or not shape or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 < d < 2**31) for d in shape):
            raise ValueError(f"{str(filepath)!r} is corrupted: its input shape {shape!r} is not a list of sizes")
        if isinstance(model, Sequential):  # built from shapes alone: try it where nothing is allocated
            with torch.device("meta"):
                probe = copy.deepcopy(model)
                try:
                    probe.build(tuple(shape))
                except _CONFIG_ERRORS as e:
                    raise ValueError(f"{str(filepath)!r}: model {getattr(model, 'name', '')!r} cannot be built for "
                                     f"its input shape {shape} ({type(e).__name__}: {e})") from None
                _check_fit(probe, tensors, filepath)
        try:
            model.build(tuple(shape))
        except _CONFIG_ERRORS as e:
            raise ValueError(f"{str(filepath)!r}: model {getattr(model, 'name', '')!r} cannot be built for its input "
                             f"shape {shape} ({type(e).__name__}: {e})") from None
    _load_state(model, tensors, filepath)
