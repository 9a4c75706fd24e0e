"""``compile(jit_compile=True)``: the forward half of the train, test and predict steps through
``torch.compile``.

What one compiled graph holds (``fullgraph=True``): the model's forward, the loss, the loss's
range probe and the sums of the running-mean metrics; AOTAutograd compiles its backward too.
The recurrent layers' time loops are the engine's custom operators (``rnnkit.engine.library``),
so Dynamo captures them whole. What stays eager, around the graph: ``backward()`` (which runs
the compiled backward), the gradient norms, the NaN/inf guard, clipping and the optimizer step,
since the guard decides in Python whether to step, and the callbacks.

The first step of a ``Trainer`` runs eagerly: it builds lazy layers, picks the metrics from the
data and learns the output's shape, against which later batches' labels are checked before the
graph runs. A change of batch size or sequence length recompiles once, with dynamic sizes.

Where the steps cannot be compiled they run eagerly, after exactly one warning that names why:
torch.compile unavailable, truncated BPTT or stateful layers (state carried between calls in
Python), ``fit(distributed=True)``, or a model Dynamo cannot capture as one graph (a ``Lambda``
that reads values back to Python, say).

``jit_compile="auto"`` means False, as in Keras's torch backend.
"""

from __future__ import annotations

import types
import warnings
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor

JitCompile = Union[bool, str]


def resolve(jit_compile: JitCompile) -> bool:
    """True, False, or "auto" (False) -> bool; anything else is an error."""
    if jit_compile == "auto":
        return False
    if not isinstance(jit_compile, bool):
        raise ValueError(f"Received an invalid value for argument `jit_compile`, expected True, False or 'auto', "
                         f"got {jit_compile!r}")
    return jit_compile


def unavailable() -> Optional[str]:
    """Why torch.compile cannot run here, or None."""
    try:
        import torch._dynamo
    except ImportError as e:  # a torch build without Dynamo
        return f"torch.compile is not available ({e})"
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile is not supported on this Python/torch build"
    return None


def _own_copy(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a function or bound method) with a code object of its own.

    Dynamo keeps compiled graphs per code object, and counts them against its recompile limit
    (``torch._dynamo.config.recompile_limit``, 8) there. Without a copy every trainer's train and
    test graphs in a process pile onto ``_forward_loss`` (two or three per model: batch sizes,
    grad mode), so a fourth jit-compiled model would hit the limit and run eagerly, and each call
    would first try the guards of the other models' graphs.
    """
    if isinstance(fn, types.MethodType):
        return types.MethodType(_own_copy(fn.__func__), fn.__self__)
    copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__, copy.__qualname__ = fn.__kwdefaults__, fn.__qualname__
    return copy


class JitSteps:
    """The compiled step functions of one ``Trainer``, and why they are off, if they are.

    Attributes:
        backend: torch.compile's backend. The tests use "aot_eager", which captures and
            traces the graphs as Inductor would, without Inductor's code generation.
    """

    backend = "inductor"

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.off: Optional[str] = unavailable()  # why compiled steps are off for good
        self.warned: set[str] = set()
        self.failure: Optional[Exception] = None  # the last capture failure, until settle()
        self._model_checked = False
        self._train: Optional[Callable[..., Any]] = None
        self._test: Optional[Callable[..., Any]] = None
        self._predict: Optional[Callable[..., Any]] = None

    # -- when ------------------------------------------------------------------------------

    def usable(self, why_not: Optional[str] = None) -> bool:
        """Whether to run the compiled step; ``why_not`` is a passing reason to run eagerly
        (warned about once). Reasons that hold for good are kept in ``off``."""
        why = self.off or why_not or self._model_reason()
        if why is None:
            return True
        self._warn(why)
        return False

    def _model_reason(self) -> Optional[str]:
        if self._model_checked:
            return None
        self._model_checked = True
        if any(getattr(m, "stateful", False) is True for m in self.trainer.model.modules()):
            self.off = "stateful layers carry their state between calls in Python attributes"
            return self.off
        return None

    def _warn(self, why: str) -> None:
        if why not in self.warned:
            self.warned.add(why)
            warnings.warn(f"compile(jit_compile=True): {why}; these steps run eagerly instead", UserWarning,
                          stacklevel=5)

    def settle(self) -> None:
        """Call after an eager step that followed a failed capture went through: the model, not the
        batch, is what Dynamo could not capture, so compiled steps are off for good (one warning).
        A batch that fails eagerly too raises its own error and leaves compilation on."""
        error, self.failure = self.failure, None
        if error is not None and self.off is None:
            text = str(error).strip()
            first = text.splitlines()[0] if text else ""
            self.off = f"torch.compile could not capture the model as one graph ({type(error).__name__}: {first})"
            self._warn(self.off)

    # -- the steps -------------------------------------------------------------------------

    def _compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return torch.compile(_own_copy(fn), fullgraph=True, backend=self.backend)

    def _forward_loss(self, x: Any, y: Tensor) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], list[Any]]:
        t = self.trainer
        y_pred, mask = t.model._call_with_mask(x)
        # Labels are checked eagerly before the graph runs (Trainer._compiled): once per fit for
        # arrays, per batch for streamed data. Checking them here would read values back, which
        # fails capture with fullgraph=True and so turned compilation off for streamed data.
        loss = t.compute_loss(y, y_pred, mask, check_targets=False)
        # y_pred leaves the graph detached: an output that requires grad gets a tangent in the
        # compiled backward, which AOTAutograd fills with zeros and adds in on every step.
        detached = y_pred.detach()
        return loss, detached, mask, t.loss.range_probe(detached), t.metrics.batch_sums(y, detached, mask)

    def train(self, x: Any, y: Tensor) -> Optional[tuple[Any, ...]]:
        """(loss, y_pred (detached), mask, probe, metric sums) from the compiled graph, or None if
        it failed (warned; run the step eagerly)."""
        if self._train is None:
            self._train = self._compile(self._forward_loss)
        return self._run(self._train, x, y)

    def test(self, x: Any, y: Tensor) -> Optional[tuple[Any, ...]]:
        if self._test is None:
            self._test = self._compile(self._forward_loss)
        return self._run(self._test, x, y)

    def predict(self, x: Any) -> Optional[Any]:
        if self._predict is None:
            model = self.trainer.model
            self._predict = self._compile(lambda inputs: model(inputs))
        return self._run(self._predict, x)

    def _run(self, fn: Callable[..., Any], *args: Any) -> Optional[Any]:
        self.failure = None  # an earlier failure whose batch then raised eagerly says nothing now
        try:
            return fn(*args)
        except torch._dynamo.exc.TorchDynamoException as e:
            # Dynamo gave up while capturing (a graph break under fullgraph, or an error raised
            # by the traced code), before anything ran. The caller runs the step eagerly, which
            # raises a real error of the batch itself, then calls settle().
            self.failure = e
            return None
