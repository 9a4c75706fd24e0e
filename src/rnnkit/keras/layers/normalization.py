r"""Keras's ``LayerNormalization`` and ``BatchNormalization``, with Keras's defaults and weights.

Both compute

.. math::
    y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

with the biased variance σ². ``LayerNormalization`` takes μ, σ² per sample over
``axis`` (default: the features); ``BatchNormalization`` over every axis but ``axis``
(the batch, and time for (B, T, F)), in training, and from its moving statistics
at inference.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Layer, Shape, check_flag
from .initializers import check_initializer, initialize


def _check_epsilon(epsilon: Any) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(f"Received an invalid value for argument `epsilon`, expected a positive number, got {epsilon!r}")
    return float(epsilon)


def _check_axis(layer: Layer, axis: int, rank: int) -> int:
    if not -rank <= axis < rank or axis % rank == 0:
        raise ValueError(f"Layer {layer.name!r}: `axis`={axis} must name a non-batch axis of rank-{rank} inputs")
    return axis % rank


class LayerNormalization(Layer):
    """Normalises each sample over ``axis``: (B, ..., F) -> same shape.

    Args:
        axis: an int or a list of ints, the axes normalised together (default -1).
        epsilon: added to the variance (Keras's default 1e-3).
        center, scale: learn β (beta) and γ (gamma), of the shape of the ``axis`` dims.
        beta_initializer, gamma_initializer: Keras's "zeros" and "ones".

    Weights: [gamma, beta] (each present only if asked for). Masks pass through unchanged.
    """

    supports_masking = True

    def __init__(
        self,
        axis: Union[int, Sequence[int]] = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: str = "zeros",
        gamma_initializer: str = "ones",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and axis and all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
            self.axis: Union[int, list[int]] = list(axis)
        elif isinstance(axis, int) and not isinstance(axis, bool):
            self.axis = axis
        else:
            raise TypeError(f"Argument `axis` must be an int or a non-empty list of ints, got {axis!r}")
        self.epsilon = _check_epsilon(epsilon)
        self.center = check_flag(center, "center")
        self.scale = check_flag(scale, "scale")
        self.beta_initializer = check_initializer(beta_initializer, "beta_initializer")
        self.gamma_initializer = check_initializer(gamma_initializer, "gamma_initializer")
        self.gamma: Optional[nn.Parameter] = None
        self.beta: Optional[nn.Parameter] = None
        self._build_declared()

    def _resolve_axes(self, rank: int) -> tuple[int, ...]:
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        return tuple(sorted(_check_axis(self, a, rank) for a in axes))

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape[a] for a in self._resolve_axes(len(input_shape)))
        if any(d is None for d in shape):
            raise ValueError(f"Layer {self.name!r} needs known sizes on `axis`={self.axis}, got shape {tuple(input_shape)}")
        if self.scale:
            self.gamma = nn.Parameter(torch.empty(shape, dtype=self.weight_dtype))
        if self.center:
            self.beta = nn.Parameter(torch.empty(shape, dtype=self.weight_dtype))
        self.built = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.gamma is not None:
            initialize(self.gamma.data, self.gamma_initializer)
        if self.beta is not None:
            initialize(self.beta.data, self.beta_initializer)

    def input_shape_from_state(self, state_dict: dict, prefix: str) -> Optional[Shape]:
        p = state_dict.get(prefix + "gamma", state_dict.get(prefix + "beta"))
        if p is None:
            return None
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        rank = max(a + 1 if a >= 0 else 1 - a for a in axes)
        while len({a % rank for a in axes}) < len(axes):  # the smallest rank where the axes are distinct
            rank += 1
        shape: list[Optional[int]] = [None] * rank
        for a, size in zip(self._resolve_axes(rank), p.shape):
            shape[a] = int(size)
        return tuple(shape)

    def _param_shape(self) -> tuple[int, ...]:
        p = self.gamma if self.gamma is not None else self.beta
        return tuple(p.shape) if p is not None else ()

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Layer {self.name!r} expects a tensor or numpy array, got {type(x).__name__}")
        dtype = self.gamma.dtype if self.gamma is not None else (self.beta.dtype if self.beta is not None else self.weight_dtype)
        x = x.to(dtype)
        axes, sizes = self._resolve_axes(x.dim()), self._param_shape()
        if sizes and tuple(x.shape[a] for a in axes) != sizes:
            raise ValueError(
                f"Layer {self.name!r} was built for sizes {sizes} on `axis`={self.axis}, got shape {tuple(x.shape)}"
            )
        if axes == tuple(range(x.dim() - len(axes), x.dim())):
            return F.layer_norm(x, tuple(x.shape[a] for a in axes), self.gamma, self.beta, self.epsilon)
        mean = x.mean(dim=axes, keepdim=True)
        var = x.var(dim=axes, keepdim=True, unbiased=False)
        y = (x - mean) * torch.rsqrt(var + self.epsilon)
        shape = [x.shape[d] if d in axes else 1 for d in range(x.dim())]
        if self.gamma is not None:
            y = y * self.gamma.reshape(shape)
        if self.beta is not None:
            y = y + self.beta.reshape(shape)
        return y

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._resolve_axes(len(input_shape))
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(axis=self.axis, epsilon=self.epsilon, center=self.center, scale=self.scale,
                      beta_initializer=self.beta_initializer, gamma_initializer=self.gamma_initializer)
        return config


class BatchNormalization(Layer):
    r"""Normalises each feature over the batch (and time): (B, ..., F) -> same shape.

    In training (``training=True``, or ``self.training`` when None) the layer uses the
    batch's mean and biased variance, over every axis but ``axis``, skipping masked steps
    when a (B, T) ``mask`` comes with (B, T, F) inputs, and updates its moving statistics
    with Keras's momentum convention:

    .. math::
        \mu_{moving} \leftarrow m\, \mu_{moving} + (1 - m)\, \mu_{batch}

    (torch's ``momentum`` is 1 - m, and torch's moving variance is unbiased; Keras's is
    not, and neither is ours). At inference it uses the moving statistics. As in Keras,
    a layer with ``trainable=False`` always runs in inference mode.

    Args:
        axis: the feature axis (default -1). momentum: m (default 0.99). epsilon: 1e-3.
        center, scale: learn β and γ. *_initializer: Keras's names and defaults.

    Weights, in Keras's order: [gamma, beta, moving_mean, moving_variance]; the moving
    statistics are non-trainable weights (counted by ``count_params`` and ``summary``,
    never given to the optimiser). Masks pass through unchanged.
    """

    supports_masking = True

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: str = "zeros",
        gamma_initializer: str = "ones",
        moving_mean_initializer: str = "zeros",
        moving_variance_initializer: str = "ones",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"Argument `axis` must be an int, got {axis!r}")
        self.axis = axis
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"Received an invalid value for argument `momentum`, expected a number in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.epsilon = _check_epsilon(epsilon)
        self.center = check_flag(center, "center")
        self.scale = check_flag(scale, "scale")
        self.beta_initializer = check_initializer(beta_initializer, "beta_initializer")
        self.gamma_initializer = check_initializer(gamma_initializer, "gamma_initializer")
        self.moving_mean_initializer = check_initializer(moving_mean_initializer, "moving_mean_initializer")
        self.moving_variance_initializer = check_initializer(moving_variance_initializer, "moving_variance_initializer")
        self.gamma: Optional[nn.Parameter] = None
        self.beta: Optional[nn.Parameter] = None
        self.moving_mean: Optional[nn.Parameter] = None
        self.moving_variance: Optional[nn.Parameter] = None
        self._build_declared()

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        Layer.trainable.fset(self, value)  # type: ignore[attr-defined]
        for p in (self.moving_mean, self.moving_variance):
            if p is not None:
                p.requires_grad_(False)  # statistics, never trained

    def build(self, input_shape: Shape) -> None:
        features = input_shape[_check_axis(self, self.axis, len(input_shape))]
        if features is None:
            raise ValueError(f"Layer {self.name!r} needs a known size on `axis`={self.axis}, got shape {tuple(input_shape)}")

        def weight(trainable: bool) -> nn.Parameter:
            return nn.Parameter(torch.empty(features, dtype=self.weight_dtype), requires_grad=trainable)

        self.gamma = weight(True) if self.scale else None
        self.beta = weight(True) if self.center else None
        self.moving_mean = weight(False)
        self.moving_variance = weight(False)
        self.built = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p, name in ((self.gamma, self.gamma_initializer), (self.beta, self.beta_initializer),
                        (self.moving_mean, self.moving_mean_initializer),
                        (self.moving_variance, self.moving_variance_initializer)):
            if p is not None:
                initialize(p.data, name)

    def input_shape_from_state(self, state_dict: dict, prefix: str) -> Optional[Shape]:
        p = state_dict.get(prefix + "moving_mean")
        if p is None:
            return None
        rank = self.axis + 1 if self.axis >= 0 else 1 - self.axis
        shape: list[Optional[int]] = [None] * rank
        shape[self.axis] = int(p.shape[0])
        return tuple(shape)

    def _moments(self, x: Tensor, axis: int, mask: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        axes = tuple(d for d in range(x.dim()) if d != axis)
        if mask is None:
            return x.mean(dim=axes), x.var(dim=axes, unbiased=False)
        m = mask.unsqueeze(-1).expand_as(x).to(x.dtype)
        # Keras adds its backend epsilon (1e-7) to the count, so an all-masked batch gives 0, not NaN.
        count = m.sum(dim=axes) + 1e-7
        mean = (x * m).sum(dim=axes) / count
        shape = [x.shape[d] if d == axis else 1 for d in range(x.dim())]
        var = (((x - mean.reshape(shape)) * m) ** 2).sum(dim=axes) / count
        return mean, var

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Layer {self.name!r} expects a tensor or numpy array, got {type(x).__name__}")
        x = x.to(self.moving_mean.dtype)
        features, axis = self.moving_mean.shape[0], _check_axis(self, self.axis, x.dim())
        if x.shape[axis] != features:
            raise ValueError(
                f"Layer {self.name!r} was built for {features} features on `axis`={self.axis}, got shape {tuple(x.shape)}"
            )
        if mask is not None:
            mask = torch.as_tensor(mask, device=x.device).bool()
            if tuple(mask.shape) != tuple(x.shape[:-1]):
                raise ValueError(
                    f"Layer {self.name!r}: `mask` must have shape {tuple(x.shape[:-1])} (the input's without its last axis), "
                    f"got {tuple(mask.shape)}"
                )
        training = self.training if training is None else bool(training)
        if training and self.trainable:
            mean, var = self._moments(x, axis, mask)
            with torch.no_grad():
                self.moving_mean.mul_(self.momentum).add_(mean.detach(), alpha=1.0 - self.momentum)
                self.moving_variance.mul_(self.momentum).add_(var.detach(), alpha=1.0 - self.momentum)
        else:
            mean, var = self.moving_mean.detach(), self.moving_variance.detach()
        shape = [x.shape[d] if d == axis else 1 for d in range(x.dim())]
        inv = torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            inv = inv * self.gamma
        shift = -mean * inv
        if self.beta is not None:
            shift = shift + self.beta
        return x * inv.reshape(shape) + shift.reshape(shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        _check_axis(self, self.axis, len(input_shape))
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(axis=self.axis, momentum=self.momentum, epsilon=self.epsilon, center=self.center, scale=self.scale,
                      beta_initializer=self.beta_initializer, gamma_initializer=self.gamma_initializer,
                      moving_mean_initializer=self.moving_mean_initializer,
                      moving_variance_initializer=self.moving_variance_initializer)
        return config


__all__ = ["BatchNormalization", "LayerNormalization"]
