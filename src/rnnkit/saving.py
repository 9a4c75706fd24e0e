"""Old path of ``rnnkit.keras.saving``, kept as an alias."""

from ._alias import alias

alias(__name__, "rnnkit.keras.saving")
