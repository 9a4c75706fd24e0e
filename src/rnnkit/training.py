"""Old path of the training loop and models, kept as an alias: ``rnnkit.training.Model`` is
``rnnkit.keras.Model``, and ``rnnkit.training.<module>`` the module of ``rnnkit.keras.training``
or ``rnnkit.keras.models`` of that name."""

from ._alias import alias
from .keras.models import Model as Model
from .keras.models import NotCompiledError as NotCompiledError
from .keras.models import Sequential as Sequential

alias(__name__, "rnnkit.keras.training", replace=False, submodules={
    "model": "rnnkit.keras.models.model", "sequential": "rnnkit.keras.models.sequential",
    "summary": "rnnkit.keras.models.summary",
})
