"""Old path of ``rnnkit.keras.losses``, kept as an alias."""

from ._alias import alias

alias(__name__, "rnnkit.keras.losses")
