"""Old import paths kept as aliases of the modules that moved into ``rnnkit.keras``.

``alias(old, new)`` makes ``import old`` (and ``old.<submodule>``) give the very module
objects of ``new``, so classes keep one identity whichever path imported them.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from types import ModuleType
from typing import Optional


def alias(old: str, new: str, submodules: Optional[dict[str, str]] = None, replace: bool = True) -> ModuleType:
    """Register ``new`` (and its submodules, plus ``submodules`` {name: module}) under ``old``.

    With ``replace=False`` the module ``old`` stays itself (it re-exports names of its own)
    and only gets the submodules as attributes.
    """
    module = importlib.import_module(new)
    targets = {info.name: f"{new}.{info.name}" for info in pkgutil.iter_modules(getattr(module, "__path__", []))}
    targets.update(submodules or {})
    holder = sys.modules[old]
    for name, target in targets.items():
        sub = importlib.import_module(target)
        sys.modules[f"{old}.{name}"] = sub
        if not replace:
            setattr(holder, name, sub)
    if replace:
        sys.modules[old] = module
    return module
