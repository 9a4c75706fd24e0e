r"""Keras's attention layers: ``Attention`` (Luong), ``AdditiveAttention`` (Bahdanau), ``MultiHeadAttention``.

``Attention`` and ``AdditiveAttention`` take a list [query (B, Tq, D), value (B, Tv, Dv)]
or [query, value, key (B, Tv, D)] (key defaults to value) and give (B, Tq, Dv):

.. math::
    s_{ij} = \begin{cases} \alpha\, q_i \cdot k_j & \text{Attention, score_mode="dot"} \\
             c \sum_d \tanh(\alpha (q_{id} + k_{jd})) & \text{Attention, score_mode="concat"} \\
             \sum_d w_d \tanh(q_{id} + k_{jd}) & \text{AdditiveAttention} \end{cases}
    \qquad a_{ij} = \mathrm{softmax}_j(s_{ij}) \qquad y_i = \sum_j a_{ij} v_j

(α = ``scale`` with ``use_scale``, else 1; c = ``concat_score_weight``; w = ``scale``,
else 1). Masks come as a list [query_mask (B, Tq), value_mask (B, Tv)], optionally with a
third, key mask (B, Tv) (ANDed with the value mask; Keras 3 accepts and ignores it).
A masked key j gets s_ij - 1e9 before the softmax; a masked query row i outputs 0, and
the output's mask is the query mask. ``use_causal_mask`` lets i attend only j <= i.

``MultiHeadAttention`` (Vaswani et al. 2017) projects query, key and value per head,
attends with scores q·k / sqrt(key_dim), and projects the heads back; see its docstring.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...cells.cell import check_positive_int
from .base import Layer, Shape, check_flag, check_rate
from .initializers import check_initializer, initialize

SCORE_MODES = ("dot", "concat")


def _causal(Tq: int, Tv: int, device: torch.device) -> Tensor:
    """(1, Tq, Tv) bool: query i may see key j <= i."""
    i = torch.arange(Tq, device=device)[:, None]
    j = torch.arange(Tv, device=device)[None, :]
    return (i >= j).unsqueeze(0)


def _check_seq(layer: Layer, t: Any, what: str, dim: Optional[int] = None) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"Layer {layer.name!r}: `{what}` must be a tensor or numpy array of shape (B, T, D), got {type(t).__name__}")
    if t.dim() != 3:
        raise ValueError(f"Layer {layer.name!r}: `{what}` must have shape (B, T, D) (rank 3), got shape {tuple(t.shape)}")
    if dim is not None and t.shape[-1] != dim:
        raise ValueError(f"Layer {layer.name!r}: `{what}` must have {dim} features in its last axis, got shape {tuple(t.shape)}")
    return t


def _check_seq_mask(layer: Layer, m: Any, x: Tensor, what: str) -> Optional[Tensor]:
    if m is None:
        return None
    m = torch.as_tensor(m, device=x.device)
    if tuple(m.shape) != tuple(x.shape[:2]):
        raise ValueError(f"Layer {layer.name!r}: `{what}` must have shape (B, T) = {tuple(x.shape[:2])}, got {tuple(m.shape)}")
    return m.bool()


class Attention(Layer):
    """Dot-product (Luong) attention: [query, value(, key)] -> (B, Tq, Dv); see the module docstring.

    Args:
        use_scale: learn a scalar α multiplying the scores (Keras: initialised to 1).
        score_mode: "dot" (q·k) or "concat" (c Σ tanh(α (q + k)), with a learned scalar c).
        dropout: rate dropped from the attention weights in training.

    forward(inputs, mask=None, training=None, return_attention_scores=False, use_causal_mask=False):
        with ``return_attention_scores`` returns (output, weights (B, Tq, Tv)), the weights
        after masking and softmax, before dropout.
    Weights: [scale] with ``use_scale``, then [concat_score_weight] with "concat".
    """

    supports_masking = True

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_scale = check_flag(use_scale, "use_scale")
        if score_mode not in SCORE_MODES:
            raise ValueError(f"Received an invalid value for argument `score_mode`: expected one of {SCORE_MODES}, got {score_mode!r}")
        self.score_mode = score_mode
        self.dropout = check_rate(dropout, "dropout")
        self.seed = seed  # kept for the config; draws come from torch's generator
        self.scale: Optional[nn.Parameter] = None
        self.concat_score_weight: Optional[nn.Parameter] = None

    # ------------------------------------------------------------------ inputs

    def _split(self, inputs: Any) -> list[Tensor]:
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
            raise ValueError(
                f"Layer {self.name!r} ({type(self).__name__}) must be called on a list [query, value] or "
                f"[query, value, key], got {type(inputs).__name__}"
                + (f" of length {len(inputs)}" if isinstance(inputs, (list, tuple)) else "")
            )
        return [self._to_tensor(t) for t in inputs]

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = self._split(inputs)
        q = _check_seq(self, inputs[0], "query")
        v = _check_seq(self, inputs[1], "value")
        k = _check_seq(self, inputs[2], "key") if len(inputs) == 3 else v
        if not (q.shape[0] == v.shape[0] == k.shape[0]) or k.shape[1] != v.shape[1]:
            raise ValueError(
                f"Layer {self.name!r}: query (B, Tq, D), value (B, Tv, Dv) and key (B, Tv, D) must share B and Tv, got "
                f"{tuple(q.shape)}, {tuple(v.shape)}, {tuple(k.shape)}"
            )
        if not self.built:
            self.maybe_build([tuple(t.shape) for t in inputs])
            if any(p.device != q.device for p in self.parameters()):
                self.to(q.device)
        return super().__call__(inputs, *args, **kwargs)

    def maybe_build(self, input_shape: Any) -> None:  # type: ignore[override]
        if not self.built:
            self.build([tuple(s) for s in input_shape])
            self.built = True
            if not self._trainable:
                self.trainable = False

    def input_shape_from_state(self, state_dict: dict, prefix: str) -> Any:
        scale = state_dict.get(prefix + "scale")
        if scale is None and state_dict.get(prefix + "concat_score_weight") is None:
            return None
        dim = int(scale.shape[0]) if scale is not None and scale.dim() == 1 else None
        return [(None, None, dim), (None, None, None)]

    def build(self, input_shape: Sequence[Shape]) -> None:  # type: ignore[override]
        if self.use_scale:
            self.scale = nn.Parameter(torch.ones((), dtype=self.weight_dtype))
        if self.score_mode == "concat":
            self.concat_score_weight = nn.Parameter(torch.ones((), dtype=self.weight_dtype))
        self.built = True

    # ------------------------------------------------------------------ math

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        """(B, Tq, D), (B, Tv, D) -> (B, Tq, Tv)."""
        if self.score_mode == "dot":
            s = q @ k.transpose(1, 2)
            return s * self.scale if self.scale is not None else s
        z = q.unsqueeze(2) + k.unsqueeze(1)  # (B, Tq, Tv, D)
        if self.scale is not None:
            z = self.scale * z
        return self.concat_score_weight * torch.tanh(z).sum(-1)

    def forward(self, inputs: list[Tensor], mask: Optional[Sequence[Optional[Tensor]]] = None,
                training: Optional[bool] = None, return_attention_scores: bool = False,
                use_causal_mask: bool = False) -> Union[Tensor, tuple[Tensor, Tensor]]:
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) == 3 else v
        dtype = self.scale.dtype if self.scale is not None else self.weight_dtype
        q, v, k = q.to(dtype), v.to(dtype), k.to(dtype)
        if q.shape[-1] != k.shape[-1]:
            raise ValueError(f"Layer {self.name!r}: query and key must have the same feature size D, got shapes {tuple(q.shape)} and {tuple(k.shape)}")
        q_mask = v_mask = None
        if mask is not None:
            if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
                raise ValueError(f"Layer {self.name!r}: `mask` must be a list [query_mask, value_mask(, key_mask)], got {mask!r}")
            q_mask = _check_seq_mask(self, mask[0], q, "mask[0]")
            v_mask = _check_seq_mask(self, mask[1], v, "mask[1]")
            k_mask = _check_seq_mask(self, mask[2], k, "mask[2]") if len(mask) == 3 else None
            if k_mask is not None:
                v_mask = k_mask if v_mask is None else v_mask & k_mask
        s = self.scores(q, k)  # (B, Tq, Tv)
        keep = v_mask.unsqueeze(1) if v_mask is not None else None  # (B, 1, Tv)
        if check_flag(use_causal_mask, "use_causal_mask"):
            causal = _causal(s.shape[1], s.shape[2], s.device)
            keep = causal if keep is None else keep & causal
        if keep is not None:
            # Keras subtracts a large number rather than using -inf, so a fully masked row stays finite.
            big = 65504.0 if s.dtype == torch.float16 else 1.0e9
            s = torch.where(keep, s, s - big)
        weights = torch.softmax(s, dim=-1)
        training = self.training if training is None else bool(training)
        dropped = F.dropout(weights, self.dropout, training=True) if training and self.dropout else weights
        out = dropped @ v  # (B, Tq, Dv)
        if q_mask is not None:
            out = out * q_mask.unsqueeze(-1).to(out.dtype)
        return (out, weights) if check_flag(return_attention_scores, "return_attention_scores") else out

    def compute_mask(self, inputs: Any, mask: Optional[Sequence[Optional[Tensor]]] = None) -> Optional[Tensor]:
        if mask is None or mask[0] is None:
            return None
        return torch.as_tensor(mask[0]).bool()

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:  # type: ignore[override]
        if not isinstance(input_shape, (list, tuple)) or not 2 <= len(input_shape) <= 3:
            raise ValueError(f"Layer {self.name!r} expects the shapes [query, value] or [query, value, key], got {input_shape!r}")
        q, v = input_shape[0], input_shape[1]
        return (*tuple(q)[:-1], tuple(v)[-1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(use_scale=self.use_scale, score_mode=self.score_mode, dropout=self.dropout, seed=self.seed)
        return config


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention: s_ij = Σ_d w_d tanh(q_id + k_jd); see ``Attention``.

    Args:
        use_scale: learn the weights w (D,) (Keras's default True; glorot_uniform); else w = 1.
        dropout: rate dropped from the attention weights in training.
    Query and key must have the same feature size D. Weights: [scale (D,)] with ``use_scale``.
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape: Sequence[Shape]) -> None:  # type: ignore[override]
        dim = tuple(input_shape[0])[-1]
        if self.use_scale:
            if dim is None:
                raise ValueError(f"Layer {self.name!r} needs a known query feature size D, got shape {tuple(input_shape[0])}")
            self.scale = nn.Parameter(torch.empty(dim, dtype=self.weight_dtype))
            initialize(self.scale.data, "glorot_uniform")
        self.built = True

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        z = torch.tanh(q.unsqueeze(2) + k.unsqueeze(1))  # (B, Tq, Tv, D)
        return (z * self.scale).sum(-1) if self.scale is not None else z.sum(-1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["score_mode"]
        return config


class MultiHeadAttention(Layer):
    r"""Multi-head attention, Keras's arguments, weights and parameter count.

    .. math::
        Q_h = x_q W^Q_h + b^Q_h,\; K_h = x_k W^K_h + b^K_h,\; V_h = x_v W^V_h + b^V_h \\
        A_h = \mathrm{softmax}(Q_h K_h^\top / \sqrt{d_k} + \text{mask}) \qquad
        y = \sum_h (A_h V_h) W^O_h + b^O

    Args:
        num_heads: N.  key_dim: d_k, the size of each query/key head.
        value_dim: d_v, each value head (default key_dim).
        dropout: rate dropped from the attention weights in training.
        use_bias: biases on the four projections.
        output_shape: the last axis (or axes) of the output; default the query's F.
        kernel_initializer, bias_initializer: as in ``Dense``.

    forward(query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
            attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False):
        query (B, Tq, Fq), value (B, Tv, Fv), key (B, Tv, Fk) (default value).
        The masks are (B, Tq), (B, Tv), (B, Tv) and ``attention_mask`` (B, Tq, Tv), all
        True where attention is allowed; they are ANDed (as in Keras 3), masked scores get
        -1e9 before the softmax. Returns (B, Tq, F_out), and with
        ``return_attention_scores`` also the weights (B, N, Tq, Tv) (before dropout).
        The output's mask is the query's (``compute_mask(query, query_mask)``).

    Weights, in Keras's order and layout: query kernel (Fq, N, d_k), bias (N, d_k); key
    kernel (Fk, N, d_k), bias (N, d_k); value kernel (Fv, N, d_v), bias (N, d_v); output
    kernel (N, d_v, F_out), bias (F_out,).
    Parameters: N d_k (Fq + Fk + 2) + N d_v (Fv + 1) + (N d_v + 1) F_out.
    """

    supports_masking = True

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: Optional[int] = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: Union[int, Sequence[int], None] = None,
        attention_axes: Optional[Sequence[int]] = None,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        seed: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.key_dim = check_positive_int(key_dim, "key_dim")
        self.value_dim = check_positive_int(value_dim, "value_dim") if value_dim is not None else self.key_dim
        self.dropout = check_rate(dropout, "dropout")
        self.use_bias = check_flag(use_bias, "use_bias")
        if isinstance(output_shape, int):
            output_shape = (output_shape,)
        if output_shape is not None:
            output_shape = tuple(output_shape)
            if not output_shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in output_shape):
                raise ValueError(f"Argument `output_shape` must be a positive int or a tuple of them, got {output_shape!r}")
        self.output_shape_ = output_shape
        if attention_axes not in (None, 1, (1,), [1]):
            raise ValueError(
                f"Argument `attention_axes`: only attention over the time axis (None or 1) is supported, got {attention_axes!r}"
            )
        self.attention_axes = attention_axes
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer")
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer")
        self.seed = seed

    # ------------------------------------------------------------------ build

    def __call__(self, query: Any, value: Any = None, key: Any = None, **kwargs: Any) -> Any:
        query = _check_seq(self, self._to_tensor(query), "query")
        if value is None:
            raise TypeError(f"Layer {self.name!r} needs `value` (B, Tv, Fv): call it as mha(query, value) or mha(x, x)")
        value = _check_seq(self, self._to_tensor(value), "value")
        key = value if key is None else _check_seq(self, self._to_tensor(key), "key")
        if not (query.shape[0] == value.shape[0] == key.shape[0]) or key.shape[1] != value.shape[1]:
            raise ValueError(
                f"Layer {self.name!r}: query (B, Tq, Fq), value (B, Tv, Fv) and key (B, Tv, Fk) must share B and Tv, got "
                f"{tuple(query.shape)}, {tuple(value.shape)}, {tuple(key.shape)}"
            )
        if not self.built:
            self.build(tuple(query.shape), tuple(value.shape), tuple(key.shape))
            if not self._trainable:
                self.trainable = False
            if any(p.device != query.device for p in self.parameters()):
                self.to(query.device)
        return nn.Module.__call__(self, query, value, key, **kwargs)

    def build(self, query_shape: Shape, value_shape: Optional[Shape] = None, key_shape: Optional[Shape] = None) -> None:  # type: ignore[override]
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        sizes = {"query": query_shape[-1], "value": value_shape[-1], "key": key_shape[-1]}
        for what, size in sizes.items():
            if size is None:
                raise ValueError(f"Layer {self.name!r} needs a known feature size for `{what}`")
        N, dk, dv = self.num_heads, self.key_dim, self.value_dim
        out = self.output_shape_ or (sizes["query"],)
        kw = {"dtype": self.weight_dtype}

        def weight(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape, **kw))

        self.query_kernel = weight(sizes["query"], N, dk)
        self.query_bias = weight(N, dk) if self.use_bias else None
        self.key_kernel = weight(sizes["key"], N, dk)
        self.key_bias = weight(N, dk) if self.use_bias else None
        self.value_kernel = weight(sizes["value"], N, dv)
        self.value_bias = weight(N, dv) if self.use_bias else None
        self.output_kernel = weight(N, dv, *out)
        self.output_bias = weight(*out) if self.use_bias else None
        self.built = True
        self.reset_parameters()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        # Lets ``load_state_dict`` fill a layer that has not seen data: the kernels give the three F's.
        kernels = [state_dict.get(prefix + n) for n in ("query_kernel", "value_kernel", "key_kernel")]
        if not self.built and all(k is not None for k in kernels):
            q, v, k = ((None, None, int(t.shape[0])) for t in kernels)
            self.build(q, v, k)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reset_parameters(self) -> None:
        for kernel in (self.query_kernel, self.key_kernel, self.value_kernel):
            # Keras's EinsumDense: fan_in = the input features, fan_out = heads x head size.
            initialize(kernel.data, self.kernel_initializer, fans=(kernel.shape[0], kernel.shape[1] * kernel.shape[2]))
        o = self.output_kernel
        initialize(o.data, self.kernel_initializer, fans=(o.shape[0] * o.shape[1], math.prod(o.shape[2:])))
        for b in (self.query_bias, self.key_bias, self.value_bias, self.output_bias):
            if b is not None:
                initialize(b.data, self.bias_initializer)

    # ------------------------------------------------------------------ math

    def forward(
        self,
        query: Tensor,
        value: Tensor,
        key: Optional[Tensor] = None,
        query_mask: Optional[Tensor] = None,
        value_mask: Optional[Tensor] = None,
        key_mask: Optional[Tensor] = None,
        attention_mask: Optional[Tensor] = None,
        return_attention_scores: bool = False,
        training: Optional[bool] = None,
        use_causal_mask: bool = False,
    ) -> Union[Tensor, tuple[Tensor, Tensor]]:
        key = value if key is None else key
        dtype = self.query_kernel.dtype
        for what, t, kernel in (("query", query, self.query_kernel), ("value", value, self.value_kernel),
                                ("key", key, self.key_kernel)):
            _check_seq(self, t, what, kernel.shape[0])
        query, value, key = query.to(dtype), value.to(dtype), key.to(dtype)
        B, Tq, Tv = query.shape[0], query.shape[1], value.shape[1]
        keep = None
        for what, m, x in (("query_mask", query_mask, query), ("value_mask", value_mask, value), ("key_mask", key_mask, key)):
            m = _check_seq_mask(self, m, x, what)
            if m is not None:
                m = m.unsqueeze(-1) if what == "query_mask" else m.unsqueeze(1)  # (B, Tq, 1) or (B, 1, Tv)
                keep = m if keep is None else keep & m
        if check_flag(use_causal_mask, "use_causal_mask"):
            causal = _causal(Tq, Tv, query.device)
            keep = causal if keep is None else keep & causal
        if attention_mask is not None:
            attention_mask = torch.as_tensor(attention_mask, device=query.device)
            if tuple(attention_mask.shape) != (B, Tq, Tv):
                raise ValueError(
                    f"Layer {self.name!r}: `attention_mask` must have shape (B, Tq, Tv) = {(B, Tq, Tv)}, got {tuple(attention_mask.shape)}"
                )
            attention_mask = attention_mask.bool()
            keep = attention_mask if keep is None else keep & attention_mask

        q = torch.einsum("btf,fnd->btnd", query, self.query_kernel)  # (B, Tq, N, dk)
        k = torch.einsum("btf,fnd->btnd", key, self.key_kernel)  # (B, Tv, N, dk)
        v = torch.einsum("btf,fnd->btnd", value, self.value_kernel)  # (B, Tv, N, dv)
        if self.use_bias:
            q, k, v = q + self.query_bias, k + self.key_bias, v + self.value_bias
        s = torch.einsum("bqnd,bknd->bnqk", q / math.sqrt(self.key_dim), k)  # (B, N, Tq, Tv)
        if keep is not None:
            s = s.masked_fill(~keep.unsqueeze(1), -65504.0 if s.dtype == torch.float16 else -1.0e9)
        weights = torch.softmax(s, dim=-1)
        training = self.training if training is None else bool(training)
        dropped = F.dropout(weights, self.dropout, training=True) if training and self.dropout else weights
        heads = torch.einsum("bnqk,bknd->bqnd", dropped, v)  # (B, Tq, N, dv)
        out = torch.tensordot(heads, self.output_kernel, dims=([2, 3], [0, 1]))  # (B, Tq, *F_out)
        if self.output_bias is not None:
            out = out + self.output_bias
        return (out, weights) if check_flag(return_attention_scores, "return_attention_scores") else out

    def compute_output_shape(self, query_shape: Shape, value_shape: Optional[Shape] = None,  # type: ignore[override]
                             key_shape: Optional[Shape] = None) -> Shape:
        query_shape = tuple(query_shape)
        if self.output_shape_:
            return (*query_shape[:-1], *self.output_shape_)
        return query_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, key_dim=self.key_dim, value_dim=self.value_dim, dropout=self.dropout,
            use_bias=self.use_bias, output_shape=list(self.output_shape_) if self.output_shape_ else None,
            attention_axes=self.attention_axes, kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer, seed=self.seed,
        )
        return config


__all__ = ["AdditiveAttention", "Attention", "MultiHeadAttention"]
