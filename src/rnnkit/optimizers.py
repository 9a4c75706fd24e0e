"""Old path of ``rnnkit.keras.optimizers``, kept as an alias."""

from ._alias import alias

alias(__name__, "rnnkit.keras.optimizers")
