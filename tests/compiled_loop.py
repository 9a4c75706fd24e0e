"""What the engine tests need to know about the compiled loop: whether it is there, and whether it ran.

``require_compiled_loop`` skips a test of the C++ loop where it could not be built, except under
``RNNKIT_REQUIRE_KERNELS=1`` (CI), where ``load_kernels`` raises instead: there no such test can
skip, let alone pass without the loop. ``count_kernel_calls`` proves a path ran in C++.
"""

from __future__ import annotations

from collections import Counter

import pytest

from rnnkit.engine import kernels


def require_compiled_loop() -> None:
    """Skip unless the compiled loop is loaded (under RNNKIT_REQUIRE_KERNELS=1 a missing loop raises)."""
    if kernels.load_kernels() is None:
        pytest.skip(f"the compiled loop is unavailable ({kernels.load_error()})")


class _CountingModule:
    """The compiled module, counting each call of its functions by name."""

    def __init__(self, real) -> None:
        self._real = real
        self.calls: Counter = Counter()

    def __getattr__(self, name: str):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


def count_kernel_calls(monkeypatch) -> Counter:
    """From here on, count the compiled module's calls (forward, backward, step, ...) by name."""
    require_compiled_loop()
    counting = _CountingModule(kernels._module)
    monkeypatch.setattr(kernels, "_module", counting)
    return counting.calls
