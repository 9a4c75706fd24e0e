"""Building and loading the engine's C++ extension (``csrc/``), once per process.

The extension is built on first use with ``torch.utils.cpp_extension`` (needs a C++
compiler and ninja) and cached per (sources, flags, torch, python). When it cannot be
built, ``load_kernels`` warns once and returns None, and the engine keeps its Python loop.

Set ``RNNKIT_KERNELS=python`` to force the Python loop. Set ``RNNKIT_REQUIRE_KERNELS=1`` (CI does)
to make a failed build an error instead: a run that silently fell back to the Python loop would
otherwise pass every test while the compiled loop is broken. With that flag ``load_kernels``
never returns None (setting both flags is an error too).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import torch

from ..ops import CellSpec

ACT_CODES = {"tanh": 0, "sigmoid": 1, "relu": 2, "hard_sigmoid": 3, "linear": 4}
_module = None
_load_error: Optional[str] = None


def _cpu_flags() -> list[str]:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    words = set(info.split())
    flags = ["-mavx2", "-mfma"] if {"avx2", "fma"} <= words else []
    # The packed GEMM kernel needs AVX-512; without it the loop multiplies through ATen.
    flags += ["-mavx512f"] if flags and "avx512f" in words else []
    return flags


_CSRC = Path(__file__).with_name("csrc")
_STALE_LOCK_SECONDS = 600


def _build_dir(flags: list[str]) -> tuple[str, Path]:
    """A directory per (sources, flags, torch, python): a built module there is always current."""
    digest = hashlib.sha256()
    for path in sorted(_CSRC.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(" ".join(flags + [torch.__version__, sys.version]).encode())
    key = digest.hexdigest()[:16]
    base = Path(os.environ.get("RNNKIT_KERNELS_DIR", Path.home() / ".cache" / "rnnkit" / "kernels"))
    return f"rnnkit_recurrence_{key}", base / key


def _import_built(name: str, so: Path):
    spec = importlib.util.spec_from_file_location(name, so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kernels_required() -> bool:
    """Whether a failed build is an error (``RNNKIT_REQUIRE_KERNELS`` set to 1/true/yes).

    Only this flag, not the ``CI`` variable that every hosted CI sets: a project that depends on
    rnnkit and tests on a runner without a compiler should keep the Python loop, not fail.
    """
    return os.environ.get("RNNKIT_REQUIRE_KERNELS", "").strip().lower() in ("1", "true", "yes")


class KernelsUnavailableError(RuntimeError):
    """The C++ kernels are unavailable while ``RNNKIT_REQUIRE_KERNELS`` requires them."""


def _required_error(error: str) -> KernelsUnavailableError:
    return KernelsUnavailableError(
        f"rnnkit: the C++ kernels are unavailable ({error}) and RNNKIT_REQUIRE_KERNELS is set; "
        "unset it to fall back to the Python time loop, or fix the build (`rnnkit build` shows it)")


def load_kernels():
    """The compiled module, building it on first use; None (with one warning) if that fails.

    With ``RNNKIT_REQUIRE_KERNELS=1`` a failed build raises ``KernelsUnavailableError`` instead,
    on this and every later call, so that no caller can carry on with the Python loop.

    A module already built for these sources is imported directly: torch's ``load`` takes
    a file lock on every call, and a process killed while holding it (a SIGKILLed training
    run, say) would leave every later process waiting on the lock forever.
    """
    global _module, _load_error
    if _module is not None:
        return _module
    if _load_error is None and os.environ.get("RNNKIT_KERNELS", "").lower() == "python":
        _load_error = "disabled by RNNKIT_KERNELS=python"
    if _load_error is not None:
        if kernels_required():
            raise _required_error(_load_error)
        return None
    # -fopenmp first: ATen's parallel_for is a header template that runs serially unless the
    # extension itself is built with OpenMP (the loader then binds libgomp.so.1 to the copy
    # torch already loaded, so both share one thread pool). A compiler without OpenMP still
    # gets the single-threaded loop, with its simd pragmas.
    error = ""
    for cflags, ldflags in ((["-fopenmp"], ["-fopenmp"]), (["-fopenmp-simd"], [])):
        try:
            _module = _build_or_import(["-O3", *_cpu_flags(), *cflags], ldflags)
            return _module
        except Exception as exc:  # a missing compiler or ninja must not break the library
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    _load_error = error
    if kernels_required():
        raise _required_error(error)
    warnings.warn(f"rnnkit: C++ kernels unavailable ({_load_error}); using the Python time loop, "
                  "which gives the same results more slowly", RuntimeWarning, stacklevel=3)
    return None


def load_error() -> str:
    """Why the compiled loop is unavailable ("" when it is loaded), loading it on first use.

    A constant to torch.compile, which would otherwise trace into the loading code.
    """
    return "" if load_kernels() is not None else str(_load_error)


# What torch.compiler.assume_constant_result(load_error) does, without its import of Dynamo,
# which would add about 2.5 s to every `import rnnkit` (tests/nn/test_compile.py fails without it).
load_error._dynamo_marked_constant = True  # type: ignore[attr-defined]


def _build_or_import(flags: list[str], ldflags: list[str]):
    name, build_dir = _build_dir(flags)
    so = build_dir / f"{name}.so"
    if so.exists():
        return _import_built(name, so)
    from torch.utils.cpp_extension import load

    build_dir.mkdir(parents=True, exist_ok=True)
    lock = build_dir / "lock"
    if lock.exists() and time.time() - lock.stat().st_mtime > _STALE_LOCK_SECONDS:
        lock.unlink(missing_ok=True)  # left by a build that was killed
    # A first run would otherwise sit silent for a minute: say what is happening, once, on stderr.
    print(f"rnnkit: building the C++ time loop, once (about 1 minute; cached in {build_dir.parent}; "
          "`rnnkit build` does it ahead of time) ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    module = load(name=name, sources=[str(_CSRC / "recurrence.cpp")], extra_cflags=flags, extra_ldflags=ldflags,
                  build_directory=str(build_dir), verbose=False)
    print(f"rnnkit: C++ time loop built in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return module


def release_cached_memory() -> int:
    """Free the buffers the compiled loop keeps for reuse between steps; returns the bytes freed.

    The loop caches its large per-sequence buffers (up to ``RNNKIT_POOL_MB``, default 512 MB)
    instead of returning them to the OS after each step, which saves refaulting them every step.
    """
    return int(_module.pool_release()) if _module is not None else 0


def kind_code(spec: CellSpec) -> int:
    if spec.kind == "rnn":
        return 0
    if spec.kind == "lstm":
        return 1
    return 2 if spec.reset_after else 3
