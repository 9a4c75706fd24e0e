"""Old path of ``rnnkit.keras.layers``, kept as an alias."""

from ._alias import alias

alias(__name__, "rnnkit.keras.layers")
