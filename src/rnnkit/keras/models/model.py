"""``Model``: a ``torch.nn.Module`` with Keras's compile/fit/evaluate/predict.

Subclass it the Keras way: call ``super().__init__()``, assign layers as
attributes, and define ``call(self, inputs)``; ``forward`` calls it, so the model
is also an ordinary torch module (``model(x)``, ``state_dict()``, ``.to()``).
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..layers import symbolic
from ..layers.base import unique_name
from ..training import loop
from .summary import print_summary
from ..training.trainer import Trainer

Shape = tuple[Optional[int], ...]


def _snake(name: str) -> str:
    """Keras's default model names: GRU -> gru, MyGRUModel -> my_gru_model."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


class _Default:
    """A read-only Keras attribute (``layers``, ``optimizer``, ``loss``) that a subclass may
    replace by assigning it, as torch code does with ``self.layers = nn.ModuleList(...)``."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn, self.name, self.__doc__ = fn, fn.__name__, fn.__doc__

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        # Non-module values land in the instance __dict__, which wins over this descriptor;
        # modules and parameters land in torch's registries, so look there first.
        for store in ("_modules", "_parameters", "_buffers"):
            registry = obj.__dict__.get(store)
            if registry is not None and self.name in registry:
                return registry[self.name]
        return self.fn(obj)


class Model(nn.Module):
    """Base of ``Sequential`` and of user models that define ``call(inputs)``.

    Attributes:
        stop_training: set True (by a callback or the NaN guard) to end ``fit`` after the current batch.
        history: the ``History`` of the last ``fit``.
        optimizer: the compiled ``rnnkit.optimizers.Optimizer`` (its ``torch_optimizer`` once built).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> "Model":
        # Keras: Model(inputs, outputs) makes a functional model.
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional

            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args: Any, name: Optional[str] = None, **kwargs: Any) -> None:
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__ got arguments {list(kwargs) or len(args)} it does not take: a subclassed "
                "Model calls super().__init__(name=...) only; Model(inputs, outputs) builds a functional model"
            )
        super().__init__()
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string, got {name!r}")
        self.name = name or unique_name(_snake(type(self).__name__))
        self.built = False
        self.stop_training = False
        self.history: Any = None
        self._trainer: Optional[Trainer] = None
        self._build_input_shape: Optional[Shape] = None
        self._output_shapes: dict[str, Any] = {}
        self._call_takes: Optional[set[str]] = None
        self._build_spec: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if symbolic.is_symbolic(args, kwargs):
            return symbolic.call_symbolic(self, args, kwargs)  # a model used as a layer of a functional model
        return super().__call__(*args, **kwargs)

    # -- forward ------------------------------------------------------------------------

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define call(self, inputs), or use Sequential")

    def forward(self, inputs: Any, *args: Any, training: Optional[bool] = None, **kwargs: Any) -> Any:
        if self._call_takes is None:
            self._call_takes = set(inspect.signature(self.call).parameters)
        if "training" in self._call_takes:
            kwargs["training"] = self.training if training is None else training
        if not self.built:
            return self._first_call(inputs, *args, **kwargs)
        return self.call(inputs, *args, **kwargs)

    def _first_call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """The first forward: records each child's output shape for ``summary()``."""
        hooks = [child.register_forward_hook(self._record_shape(name)) for name, child in self.named_children()]
        try:
            out = self.call(inputs, *args, **kwargs)
        finally:
            for h in hooks:
                h.remove()
        first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
        if isinstance(first, Tensor):
            self._build_input_shape = (None, *first.shape[1:])
        if all(isinstance(t, (Tensor, np.ndarray)) and t.ndim for t in symbolic.flatten(inputs)):
            # What saving needs to build a subclassed model again: shapes (batch free) and dtypes.
            self._build_spec = symbolic.map_structure(
                lambda t: [[None, *t.shape[1:]], symbolic.dtype_name(t.dtype) if isinstance(t, Tensor) else str(t.dtype)],
                inputs)
        self.built = True
        return out

    def _record_shape(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            self._output_shapes[name] = _shape_of(out)
        return hook

    def _call_with_mask(self, inputs: Any) -> tuple[Any, Optional[Tensor]]:
        """(output, Keras mask of the output or None); Sequential overrides this."""
        return self(inputs), None

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        """Build by calling the model once on zeros of ``input_shape`` (None -> 1)."""
        shape = tuple(1 if d is None else int(d) for d in input_shape)
        dtype = self._float_dtype()
        was_training = self.training
        self.eval()
        with torch.no_grad():
            self(torch.zeros(shape, dtype=dtype))
        self.train(was_training)
        self._build_input_shape = (None, *tuple(input_shape)[1:])

    @_Default
    def layers(self) -> list[nn.Module]:
        """The direct sublayers, in the order they were assigned."""
        return list(self.children())

    def _float_dtype(self) -> torch.dtype:
        for p in self.parameters():
            if p.is_floating_point() and not isinstance(p, nn.parameter.UninitializedParameter):
                return p.dtype
        for m in self.modules():
            dtype = getattr(m, "dtype", None)
            if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
                return dtype
        return torch.get_default_dtype()

    def _device(self) -> torch.device:
        for p in self.parameters():
            if not isinstance(p, nn.parameter.UninitializedParameter):
                return p.device
        return torch.device("cpu")

    # -- sizes ---------------------------------------------------------------------------

    def count_params(self) -> int:
        """Number of scalar weights; the model must be built."""
        if not self.built and not all(getattr(m, "built", True) for m in self.modules() if m is not self):
            raise ValueError(f"Model {self.name!r} is not built yet, so its parameters do not exist: call "
                             "build(input_shape), fit, or the model on a batch first")
        return sum(p.numel() for p in _unique_params(self))

    def summary(self, line_length: Optional[int] = None, positions: Optional[Sequence[float]] = None,
                print_fn: Optional[Callable[[str], Any]] = None) -> None:
        """Print a Keras-like table (Layer (type) | Output Shape | Param #) and the totals.

        ``print_fn`` is called once per line (default ``print``); pass ``lines.append`` to capture it.
        """
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn)

    def get_weights(self) -> list[np.ndarray]:
        """All weights as numpy arrays, as Keras's ``Model.get_weights``: each layer's
        ``get_weights()`` (Keras's layout and gate order) in ``self.layers`` order, so that
        ``model.set_weights(keras_model.get_weights())`` works. A layer Keras has no layout for
        (an LSTM with peepholes, a plain torch module) gives its parameters as they are."""
        return [w for owner in self._weight_owners() for w in _arrays(owner)]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Inverse of ``get_weights``: the same number of arrays, in the same order and shapes."""
        weights = list(weights)
        owners = self._weight_owners()
        counts = [len(_arrays(o)) for o in owners]
        if len(weights) != sum(counts):
            raise ValueError(f"set_weights: expected {sum(counts)} arrays (as get_weights gives), got {len(weights)}")
        at = 0
        for owner, n in zip(owners, counts):
            part, at = weights[at : at + n], at + n
            if isinstance(owner, nn.Parameter) or not _keras_layout(owner):
                params = [owner] if isinstance(owner, nn.Parameter) else _unique_params(owner)
                _assign(params, part, at - n)
            elif n:
                owner.set_weights(part)

    def _weight_owners(self) -> list[Any]:
        """The sublayers that hold weights, in ``layers`` order, then any parameter outside them."""
        owners: list[Any] = []
        seen: set[int] = set()
        for layer in self.layers:
            params = [p for p in _unique_params(layer) if id(p) not in seen]
            if params:
                owners.append(layer)
                seen.update(id(p) for p in params)
        owners += [p for p in _unique_params(self) if id(p) not in seen]
        return owners

    # -- training ------------------------------------------------------------------------

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Optional[Sequence[Any]] = None,
                clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                global_clipnorm: Optional[float] = None, weighted_metrics: Optional[Sequence[Any]] = None,
                loss_weights: Optional[Any] = None, jit_compile: Union[bool, str] = "auto",
                steps_per_execution: int = 1) -> None:
        """Set the optimizer, loss and metrics (see ``rnnkit.optimizers/losses/metrics`` for names).

        This is Keras's compile; it shadows ``torch.nn.Module.compile`` (use ``torch.compile(model)``).

        Clipping (Keras semantics, at most one): ``clipnorm`` per parameter tensor,
        ``global_clipnorm`` over all gradients, ``clipvalue`` elementwise. It may be set
        here or on a ``rnnkit.optimizers`` optimizer, not both.

        ``weighted_metrics`` are metrics that also take fit's/evaluate's ``sample_weight``
        (or ``class_weight``); one named like a plain metric is reported as ``weighted_<name>``.

        Several outputs (functional models): ``loss`` is one loss for every output, or a
        list (in output order) or dict (by output name); ``metrics`` a list with one entry
        per output or a dict; ``loss_weights`` a list or dict of floats. Logs are named
        ``loss`` (the weighted sum), ``<output>_loss`` and ``<output>_<metric>``.

        ``jit_compile=True`` runs the forward, loss and metrics of each train, test and predict
        step as one ``torch.compile`` graph (see ``rnnkit.keras.training.jit``); where that is
        impossible the steps run eagerly after one warning. "auto" means False, as in Keras's
        torch backend. ``steps_per_execution=N`` calls the per-batch callback hooks once every
        N batches (the optimizer still steps every batch; see ``fit``).
        """
        self._trainer = Trainer(self, optimizer, loss, metrics, clipnorm, clipvalue, global_clipnorm,
                                weighted_metrics, loss_weights=loss_weights, jit_compile=jit_compile,
                                steps_per_execution=steps_per_execution)

    @_Default
    def optimizer(self) -> Any:
        """The compiled ``rnnkit.optimizers.Optimizer`` (``.torch_optimizer`` once built), or None."""
        return self._trainer.optimizer if self._trainer is not None else None

    @_Default
    def loss(self) -> Any:
        """The compiled ``rnnkit.losses.Loss``, or None."""
        return self._trainer.loss if self._trainer is not None else None

    @property
    def compiled(self) -> bool:
        return self._trainer is not None

    @property
    def metrics_names(self) -> list[str]:
        return self._trainer.metrics_names if self._trainer is not None else []

    def _require_compiled(self, what: str) -> Trainer:
        if self._trainer is None:
            raise NotCompiledError(f"You must call compile(optimizer=..., loss=...) before {what}()")
        return self._trainer

    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None, epochs: int = 1,
            verbose: Union[str, int] = "auto", callbacks: Optional[Sequence[Any]] = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            class_weight: Optional[dict[int, float]] = None, sample_weight: Any = None,
            initial_epoch: int = 0, steps_per_epoch: Optional[int] = None, validation_steps: Optional[int] = None,
            validation_batch_size: Optional[int] = None, validation_freq: int = 1,
            tbptt: Optional[int] = None, max_bad_steps: int = 10, checkpoint_dir: Any = None,
            checkpoint_every: Optional[int] = None, resume: bool = False, distributed: Optional[bool] = None) -> Any:
        """Train for ``epochs`` epochs; returns a ``History``.

        Args:
            x: (B, T, F) floats or (B, T) token ids (numpy or torch); a list, tuple or dict of arrays for
                multi-input models (passed to the model with that structure); or a generator, a
                ``keras.utils.PyDataset``, or a torch ``Dataset``/``IterableDataset``/``DataLoader`` giving
                ``(x, y)`` or ``(x, y, sample_weight)`` (see ``rnnkit.keras.training.data_adapters``).
            y: targets, (B, ...) matching the model's output (sparse labels: (B,) or (B, T) ints); only with arrays.
            shuffle: shuffle arrays each epoch (and a PyDataset's batch order); other kinds keep their order.
            class_weight: {class index: weight}, turned into per-sample (per-step for sequence labels) weights.
            sample_weight: (B,), or (B, T) to weight each time step of sequence outputs; only with arrays.
            steps_per_epoch: batches per epoch; the data continues across epochs (needed for endless generators).
            validation_data: (x_val, y_val), (x_val, y_val, val_sample_weight), or any of the kinds ``x`` takes.
            validation_steps: batches per validation run.
            tbptt: truncated BPTT window: each batch is cut into windows of ``tbptt`` time steps,
                one optimizer step per window, the recurrent state carried (detached) between the
                windows of a batch and reset at each new batch. When y has no time axis
                (many-to-one) only the last window gets a loss and a step.
            max_bad_steps: stop (``model.stop_training = True``) after this many consecutive steps
                with a non-finite loss or gradient; each is skipped and warned about.
            checkpoint_dir: write a crash-safe checkpoint there (weights, optimizer, RNGs, data order,
                history; see ``rnnkit.training.checkpoint``) at each epoch end and every
                ``checkpoint_every`` batches.
            resume: continue from the checkpoint in ``checkpoint_dir`` if there is one; the result is
                bit for bit that of an uninterrupted run (deterministic CPU mode).
            distributed: data-parallel training over the processes started by torchrun (DDP, gloo);
                each process takes a disjoint part of every global batch (see ``rnnkit.distributed``).
                None (default) means False, except in processes started by ``rnnkit train --nproc``.

        Callbacks get per batch ``logs["grad_norm"]`` (global gradient norm before clipping),
        ``logs["clipped"]`` and ``logs["skipped_steps"]`` (this epoch); per epoch
        ``logs["clip_events"]`` and ``logs["skipped_steps"]``.
        """
        trainer = self._require_compiled("fit")
        x, y = self._standardize_data(x, y)
        if isinstance(validation_data, (tuple, list)) and len(validation_data) >= 2:
            validation_data = (*self._standardize_data(validation_data[0], validation_data[1]), *validation_data[2:])
        return loop.fit(self, trainer, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                        callbacks=callbacks, validation_split=validation_split, validation_data=validation_data,
                        shuffle=shuffle, initial_epoch=initial_epoch, validation_batch_size=validation_batch_size,
                        validation_freq=validation_freq, tbptt=tbptt, max_bad_steps=max_bad_steps,
                        checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
                        distributed=distributed, class_weight=class_weight, sample_weight=sample_weight,
                        steps_per_epoch=steps_per_epoch, validation_steps=validation_steps)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Union[str, int] = "auto", sample_weight: Any = None, steps: Optional[int] = None,
                 callbacks: Optional[Sequence[Any]] = None, return_dict: bool = False) -> Any:
        """Loss (a float) when no metrics were compiled, else [loss, *metrics] (or a dict).

        ``x`` takes what ``fit`` takes; ``steps`` limits the batches read.
        """
        trainer = self._require_compiled("evaluate")
        x, y = self._standardize_data(x, y)
        logs = loop.evaluate(self, trainer, x, y, batch_size=batch_size, verbose=verbose, callbacks=callbacks,
                             sample_weight=sample_weight, steps=steps)
        return loop.format_results(logs, trainer, return_dict)

    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: Union[str, int] = "auto",
                steps: Optional[int] = None, callbacks: Optional[Sequence[Any]] = None) -> Any:
        """Outputs as numpy, computed in eval mode without gradients, ``batch_size`` samples at a time.

        ``x`` takes what ``fit`` takes (items may be x alone; a y in them is ignored).
        """
        x, _ = self._standardize_data(x, None)
        return loop.predict(self, x, batch_size=batch_size, verbose=verbose, callbacks=callbacks, steps=steps)

    def train_on_batch(self, x: Any, y: Any, reset_metrics: bool = True, return_dict: bool = False,
                       sample_weight: Any = None, class_weight: Optional[dict[int, float]] = None) -> Any:
        """One optimizer step on (x, y); returns the loss or [loss, *metrics] like ``evaluate``."""
        trainer = self._require_compiled("train_on_batch")
        x, y = self._standardize_data(x, y)
        logs = loop.train_on_batch(self, trainer, x, y, reset_metrics, sample_weight, class_weight)
        return loop.format_results(logs, trainer, return_dict)

    def test_on_batch(self, x: Any, y: Any, reset_metrics: bool = True, return_dict: bool = False,
                      sample_weight: Any = None) -> Any:
        trainer = self._require_compiled("test_on_batch")
        x, y = self._standardize_data(x, y)
        logs = loop.test_on_batch(self, trainer, x, y, reset_metrics, sample_weight)
        return loop.format_results(logs, trainer, return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        x, _ = self._standardize_data(x, None)
        return loop.predict(self, x, batch_size=None, verbose=0, callbacks=None, one_batch=True)

    def _standardize_data(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Inputs and targets in the order the model takes them (functional models map dicts by name)."""
        return x, y

    def reset_states(self) -> None:
        """Clear the carried state of every stateful/carrying recurrent layer."""
        from ..training.tbptt import recurrent_modules, reset_states

        reset_states(recurrent_modules(self), include_stateful=True)

    # -- saving --------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """A subclassed model's constructor arguments, JSON-safe; override it to make ``save`` work."""
        raise NotImplementedError(
            f"{type(self).__name__} defines its architecture in Python code; override get_config() to return its "
            "constructor arguments (and from_config() if needed) and register the class with "
            "@rnnkit.keras.saving.register_keras_serializable(), or use save_weights")

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Optional[dict[str, Any]] = None) -> "Model":
        """Keras's default: ``cls(**config)``."""
        return cls(**config)

    def save(self, filepath: Any) -> None:
        """Save architecture, weights and compile settings to one file (see ``rnnkit.keras.saving``).

        Sequential and functional models are data; a subclassed model needs ``get_config``.
        """
        from .. import saving

        saving.save_model(self, filepath)

    def save_weights(self, filepath: Any) -> None:
        from .. import saving

        saving.save_weights(self, filepath)

    def load_weights(self, filepath: Any) -> None:
        from .. import saving

        saving.load_weights(self, filepath)

    def export_onnx(self, filepath: Any, **kwargs: Any) -> Any:
        """Write the model as an ONNX graph (Sequential only; see ``rnnkit.export``)."""
        from ..export import export_onnx

        return export_onnx(self, filepath, **kwargs)


class NotCompiledError(ValueError, RuntimeError):
    """fit/evaluate before compile: a ValueError here, a RuntimeError in Keras; both catch it."""


def _keras_layout(layer: nn.Module) -> bool:
    """Whether ``layer.get_weights()`` gives Keras's layout (an rnnkit.keras layer that has one)."""
    if not hasattr(layer, "get_weights") or not hasattr(layer, "set_weights"):
        return False
    try:
        layer.get_weights()
    except ValueError:  # e.g. an LSTM with peepholes: Keras has no such weights
        return False
    return True


def _arrays(owner: Any) -> list[np.ndarray]:
    if isinstance(owner, nn.Parameter):
        return [owner.detach().cpu().numpy().copy()]
    if _keras_layout(owner):
        return list(owner.get_weights())
    return [p.detach().cpu().numpy().copy() for p in _unique_params(owner)]


def _assign(params: Sequence[nn.Parameter], arrays: Sequence[Any], first: int) -> None:
    with torch.no_grad():
        for i, (p, w) in enumerate(zip(params, arrays), start=first):
            w = torch.as_tensor(np.asarray(w))
            if tuple(w.shape) != tuple(p.shape):
                raise ValueError(f"set_weights: array {i} must have shape {tuple(p.shape)}, got {tuple(w.shape)}")
            p.copy_(w)


def _unique_params(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if not isinstance(p, nn.parameter.UninitializedParameter)]


def _shape_of(out: Any) -> Any:
    if isinstance(out, Tensor):
        return (None, *out.shape[1:])
    if isinstance(out, (tuple, list)):
        return [_shape_of(o) for o in out]
    return None
