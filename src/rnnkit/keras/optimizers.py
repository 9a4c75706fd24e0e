"""Optimizers by Keras name: thin wrappers that build a torch optimizer lazily.

Keras builds its optimizer when it first sees the variables; rnnkit's layers
create their weights on the first call, so an ``Optimizer`` here only records its
settings (Keras names and defaults) and builds the ``torch.optim`` optimizer once
the model's parameters exist. It also carries the clipping settings
(``clipnorm``, ``clipvalue``, ``global_clipnorm``), which ``fit`` applies.

The update rules are torch's; Keras's defaults (learning rate, betas, rho,
epsilon=1e-7) are passed to them. Keras places epsilon slightly differently in
Adam and RMSprop, so results agree with Keras closely but not bit for bit.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, ClassVar, Iterable, Optional, Sequence, Union

import torch
from torch import nn

OptimizerLike = Union[str, "Optimizer", torch.optim.Optimizer, type, Callable[..., torch.optim.Optimizer]]


def check_clipping(clipnorm: Optional[float], clipvalue: Optional[float], global_clipnorm: Optional[float]) -> None:
    for name, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise ValueError(f"Received an invalid value for argument `{name}`, expected a positive finite float or None, got {value!r}")
    if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
        raise ValueError(
            "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
            f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}"
        )


def _check_lr(learning_rate: Any) -> float:
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0 \
            or not math.isfinite(learning_rate):
        raise ValueError(f"Received an invalid value for argument `learning_rate`, expected a positive float, got {learning_rate!r}")
    return float(learning_rate)


def can_fuse(torch_class: type[torch.optim.Optimizer], params: Sequence[nn.Parameter]) -> bool:
    """Whether ``torch_class(params, fused=True)`` works: the class has a fused implementation and the
    parameters are dense floating-point tensors, all on the CPU or all on CUDA."""
    if "fused" not in inspect.signature(torch_class.__init__).parameters or not params:
        return False
    devices = {p.device.type for p in params}
    return (len(devices) == 1 and devices <= {"cpu", "cuda"}
            and all(p.is_floating_point() and not p.is_sparse for p in params))


class Optimizer:
    """Keras-style optimizer settings; ``build(params)`` makes the torch optimizer.

    Attributes:
        torch_optimizer: the ``torch.optim.Optimizer`` once built, else None.
        clipnorm / clipvalue / global_clipnorm: clipping applied by ``fit`` before each step.
    """

    torch_class: ClassVar[Optional[type[torch.optim.Optimizer]]] = None

    def __init__(self, learning_rate: float, *, clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, name: Optional[str] = None) -> None:
        check_clipping(clipnorm, clipvalue, global_clipnorm)
        self._learning_rate = _check_lr(learning_rate)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.torch_optimizer: Optional[torch.optim.Optimizer] = None

    def torch_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``torch_class`` (besides ``lr``)."""
        return {}

    def build(self, params: Iterable[nn.Parameter], fused: bool = True) -> torch.optim.Optimizer:
        """Create the torch optimizer over ``params`` (once; later calls return it).

        ``fused=True`` (the default, eager and ``jit_compile`` alike): torch's fused implementation
        where ``torch_class`` has one for these parameters (Adam, AdamW, SGD, Adagrad on CPU or
        CUDA): one kernel over all the tensors instead of about six ops (and as many scalar-to-tensor
        copies) per tensor, which on the CPU costs more than a small model's forward. The same
        update rule; results agree with torch's default implementation to rounding (Keras promises
        the rule, not torch's summation order). ``fused=False``: torch's default implementation.
        """
        if self.torch_optimizer is None:
            assert self.torch_class is not None
            params = list(params)
            kwargs = self.torch_kwargs()
            if fused and can_fuse(self.torch_class, params):
                kwargs["fused"] = True
            self.torch_optimizer = self.torch_class(params, lr=self._learning_rate, **kwargs)
        return self.torch_optimizer

    @property
    def built(self) -> bool:
        return self.torch_optimizer is not None

    @property
    def learning_rate(self) -> float:
        if self.torch_optimizer is not None:
            return float(self.torch_optimizer.param_groups[0]["lr"])
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = _check_lr(value)
        if self.torch_optimizer is not None:
            for group in self.torch_optimizer.param_groups:
                group["lr"] = self._learning_rate

    @property
    def has_clipping(self) -> bool:
        return any(v is not None for v in (self.clipnorm, self.clipvalue, self.global_clipnorm))

    def zero_grad(self) -> None:
        if self.torch_optimizer is not None:
            self.torch_optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        if self.torch_optimizer is None:
            raise RuntimeError("The optimizer is not built yet; call build(params) first")
        self.torch_optimizer.step()

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"learning_rate": self.learning_rate, "name": self.name}
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Optimizer":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class SGD(Optimizer):
    torch_class = torch.optim.SGD

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def torch_kwargs(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    torch_class = torch.optim.Adam

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), bool(amsgrad)

    def torch_kwargs(self) -> dict[str, Any]:
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon, "amsgrad": self.amsgrad}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras default ``weight_decay=0.004``)."""

    torch_class = torch.optim.AdamW

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.weight_decay = float(weight_decay)

    def torch_kwargs(self) -> dict[str, Any]:
        return {**super().torch_kwargs(), "weight_decay": self.weight_decay}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weight_decay": self.weight_decay}


class Adamax(Adam):
    torch_class = torch.optim.Adamax

    def torch_kwargs(self) -> dict[str, Any]:
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon}


class Nadam(Adam):
    torch_class = torch.optim.NAdam

    def torch_kwargs(self) -> dict[str, Any]:
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon}


class RMSprop(Optimizer):
    torch_class = torch.optim.RMSprop

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 centered: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), bool(centered)

    def torch_kwargs(self) -> dict[str, Any]:
        return {"alpha": self.rho, "momentum": self.momentum, "eps": self.epsilon, "centered": self.centered}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adagrad(Optimizer):
    torch_class = torch.optim.Adagrad

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = float(initial_accumulator_value), float(epsilon)

    def torch_kwargs(self) -> dict[str, Any]:
        return {"initial_accumulator_value": self.initial_accumulator_value, "eps": self.epsilon}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    torch_class = torch.optim.Adadelta

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def torch_kwargs(self) -> dict[str, Any]:
        return {"rho": self.rho, "eps": self.epsilon}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class TorchOptimizer(Optimizer):
    """Wraps a ``torch.optim.Optimizer`` instance, or a class/factory called with the parameters."""

    def __init__(self, optimizer: Union[torch.optim.Optimizer, Callable[..., torch.optim.Optimizer]], **kwargs: Any) -> None:
        instance = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
        lr = instance.param_groups[0].get("lr", 1e-3) if instance is not None else 1e-3
        lr = float(lr) if isinstance(lr, (int, float)) else 1e-3
        super().__init__(lr, name=type(optimizer).__name__ if instance is not None else getattr(optimizer, "__name__", "torch"), **kwargs)
        self.factory = None if instance is not None else optimizer
        self.torch_optimizer = instance

    def build(self, params: Iterable[nn.Parameter], fused: bool = False) -> torch.optim.Optimizer:
        """``fused`` is ignored: the torch optimizer is the user's, as given."""
        params = [p for p in params if p.requires_grad]
        if self.torch_optimizer is None:
            assert self.factory is not None
            opt = self.factory(params)
            if not isinstance(opt, torch.optim.Optimizer):
                raise TypeError(f"Argument `optimizer`: calling {self.factory!r} with the parameters must give a torch.optim.Optimizer, got {type(opt).__name__}")
            self.torch_optimizer = opt
            return opt
        owned = {id(p) for g in self.torch_optimizer.param_groups for p in g["params"]}
        missing = [p for p in params if id(p) not in owned]
        if len(missing) == len(params) and params:
            raise ValueError(
                "Argument `optimizer`: the torch optimizer instance holds none of the model's parameters "
                "(was it created before the model was built, or for another model?). Pass a class "
                "(optimizer=torch.optim.Adam) or a name ('adam'), or build the model first"
            )
        if missing:
            import warnings

            warnings.warn(f"The torch optimizer does not hold {len(missing)} of the model's {len(params)} trainable "
                          "parameters; they will not be trained", stacklevel=4)
        return self.torch_optimizer

    def get_config(self) -> dict[str, Any]:
        return {}


_BY_NAME: dict[str, type[Optimizer]] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "adamax": Adamax, "nadam": Nadam, "rmsprop": RMSprop,
    "adagrad": Adagrad, "adadelta": Adadelta,
}
NAMES = tuple(_BY_NAME)


def get(identifier: OptimizerLike) -> Optimizer:
    """An Optimizer from a name ("adam", with Keras's defaults), an Optimizer, or a torch optimizer/class."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer {identifier!r}; expected one of {list(NAMES)}, a rnnkit.optimizers.Optimizer, "
                             "or a torch.optim optimizer instance or class")
        return cls()
    if isinstance(identifier, torch.optim.Optimizer) or (callable(identifier) and not isinstance(identifier, type)):
        return TorchOptimizer(identifier)
    if isinstance(identifier, type) and issubclass(identifier, torch.optim.Optimizer):
        return TorchOptimizer(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise TypeError(f"Argument `optimizer` must be a name {list(NAMES)}, a rnnkit.optimizers.Optimizer, or a torch.optim "
                    f"optimizer instance or class, got {identifier!r}")


def serialize(optimizer: Optimizer) -> Optional[dict[str, Any]]:
    """{"class_name", "config"} for rnnkit optimizers; None for wrapped torch optimizers (not saved)."""
    if isinstance(optimizer, TorchOptimizer) or type(optimizer).__name__ not in {c.__name__ for c in _BY_NAME.values()}:
        return None
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(data: dict[str, Any]) -> Optimizer:
    classes = {c.__name__: c for c in _BY_NAME.values()}
    name = data.get("class_name")
    if name not in classes:
        raise ValueError(f"Unknown optimizer class {name!r}; expected one of {sorted(classes)}")
    return classes[name].from_config(dict(data.get("config", {})))
