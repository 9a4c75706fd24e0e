"""Save and load models as one safetensors file: weights as tensors, the rest as JSON.

File layout (a standard safetensors file, readable by any safetensors tool):
    tensors                  the model's ``state_dict``
    __metadata__["format"]   "rnnkit.model" (``save``) or "rnnkit.weights" (``save_weights``)
    __metadata__["version"]  format version, "1"
    __metadata__["config"]   JSON: {"class_name": "Sequential", "config": {...layers...},
                             "compile": {...} or null}  (models only)
    __metadata__["sha256"]   digest of the tensor bytes, so a corrupted file is refused

Nothing is ever unpickled: a file that is not one of ours, or is damaged, raises a
ValueError that says so. The architecture is JSON for every kind of model:
    Sequential   its layers' configs
    Functional   its layers' configs and the calls between them (the graph)
    subclassed   ``get_config()`` of a class registered with ``@register_keras_serializable()``
                 (or passed to ``load_model(custom_objects=...)``), and the shapes and dtypes of
                 its first call, on which the reloaded model is called once to build its weights.
Any suffix works, ``.keras`` included.
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


class MissingConfigError(NotImplementedError, TypeError):
    """save() of a subclassed model without get_config: NotImplementedError as in Keras, TypeError as before."""


_CLASSES: dict[str, type] = {}
_NAMES: dict[type, str] = {}


def register_keras_serializable(package: str = "Custom", name: Optional[str] = None) -> Any:
    """Class decorator: lets ``load_model`` find a subclassed Model (or Layer) as "package>name".

        @register_keras_serializable(package="my_project")
        class Encoder(keras.Model):
            def __init__(self, units, **kwargs): ...
            def get_config(self): return {"units": self.units, "name": self.name}
    """
    if not isinstance(package, str) or (name is not None and not isinstance(name, str)):
        raise TypeError(f"register_keras_serializable: `package` and `name` must be strings, got {package!r}, {name!r}")

    def decorator(cls: type) -> type:
        key = f"{package}>{name or cls.__name__}"
        if key in _CLASSES and _CLASSES[key] is not cls and _CLASSES[key].__qualname__ != cls.__qualname__:
            raise ValueError(f"{key!r} is already registered to {_CLASSES[key].__qualname__}")
        _CLASSES[key] = cls
        _NAMES[cls] = key
        return cls

    return decorator


def registered_name(cls: type) -> str:
    """The name a class is saved under: "package>name" when registered, else its class name."""
    return _NAMES.get(cls, cls.__name__)


def model_to_data(model: Any) -> dict[str, Any]:
    """{"class_name", "config"[, "build"]}: what rebuilds ``model`` without its weights."""
    from .models.functional import Functional
    from .models.model import Model
    from .models.sequential import Sequential

    if isinstance(model, Sequential):
        return {"class_name": "Sequential", "config": model.get_config()}
    if isinstance(model, Functional):
        return {"class_name": "Functional", "config": model.get_config()}
    cls = type(model)
    if cls.get_config is Model.get_config:
        raise MissingConfigError(
            f"save() cannot store {cls.__name__}: it is a subclassed Model, whose architecture is Python code, and it "
            "does not override get_config(). Implement get_config() (returning its constructor arguments), register "
            "the class with @rnnkit.keras.saving.register_keras_serializable(), or save the weights only with "
            "model.save_weights(path)")
    spec = getattr(model, "_build_spec", None)
    if spec is None:
        raise ValueError(f"save() needs {cls.__name__} {getattr(model, 'name', '')!r} to have been called on data once "
                         "(fit, predict or model(x)), so that the reloaded model can be built the same way")
    return {"class_name": registered_name(cls), "config": model.get_config(), "build": spec}


def model_from_data(data: dict[str, Any], custom_objects: Optional[dict[str, Any]] = None) -> Any:
    """Inverse of ``model_to_data`` (weights not loaded)."""
    from .models.functional import Functional, zeros_like_spec
    from .models.sequential import Sequential

    name = data.get("class_name")
    config = data.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"The config of {name!r} is not a dict")
    if name == "Sequential":
        return Sequential.from_config(config)
    if name == "Functional":
        return Functional.from_config(config, custom_objects=custom_objects)
    custom = custom_objects or {}
    cls = custom.get(name) or custom.get(str(name).split(">")[-1]) or _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"Could not locate class {name!r}: decorate it with "
                         "@rnnkit.keras.saving.register_keras_serializable() (in code imported before load_model), or "
                         f"pass load_model(path, custom_objects={{{str(name).split('>')[-1]!r}: TheClass}})")
    model = cls.from_config(dict(config))
    spec = data.get("build")
    if spec is not None:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(zeros_like_spec(spec))
        model.train(was_training)
        from .training.tbptt import recurrent_modules, reset_states

        reset_states(recurrent_modules(model), include_stateful=True)
    return model


def save_model(model: Any, filepath: PathLike) -> None:
    """Write a model's architecture, weights and compile settings to one file."""
    config = {**model_to_data(model), "compile": None}
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


def load_model(filepath: PathLike, custom_objects: Optional[dict[str, Any]] = None, compile: bool = True) -> Any:
    """Rebuild a model saved with ``model.save(path)``; predictions are identical to the saved model's.

    ``custom_objects``: {"ClassName": cls} for subclassed models and layers not registered
    with ``register_keras_serializable``.
    """
    if isinstance(custom_objects, bool):  # load_model(path, False): the old positional `compile`
        custom_objects, compile = None, custom_objects
    tensors, meta = _read(filepath, MODEL_FORMAT)
    config = _json_field(meta, "config", filepath, "model config") if "config" in meta else None
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) or not isinstance(config.get("config"), dict):
        name = config.get("class_name") if isinstance(config, dict) else None
        raise ValueError(f"{str(filepath)!r}: unknown model class {name!r}, or no layer config")

    def rebuild() -> Any:
        try:
            return model_from_data(config, custom_objects)
        except _CONFIG_ERRORS as e:
            raise ValueError(f"{str(filepath)!r}: cannot rebuild the model from its config ({type(e).__name__}: {e})") from None

    if config["class_name"] == "Sequential":
        # First on the meta device, which allocates nothing: a config that no longer matches the
        # weights (say a damaged `units`) is refused before it can ask for gigabytes. (Other
        # models are built by calling them, which needs real tensors.)
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

    clip = {k: data[k] for k in ("clipnorm", "clipvalue", "global_clipnorm", "jit_compile", "steps_per_execution")
            if k in data}
    loss = data["loss"]
    if isinstance(loss, dict) and "class_name" not in loss:  # one loss per output name
        loss = {k: None if v is None else losses.deserialize(v) for k, v in loss.items()}
        clip["loss_weights"] = data.get("loss_weights")
    else:
        loss = losses.deserialize(loss)
    model.compile(optimizer=optimizers.deserialize(data["optimizer"]), loss=loss, metrics=data.get("metrics"),
                  weighted_metrics=data.get("weighted_metrics"), **clip)


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
