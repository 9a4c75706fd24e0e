"""Old path of ``rnnkit.keras.export``, kept as an alias."""

from ._alias import alias

alias(__name__, "rnnkit.keras.export")
