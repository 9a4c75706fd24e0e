"""Old path of ``rnnkit.keras.metrics``, kept as an alias."""

from ._alias import alias

alias(__name__, "rnnkit.keras.metrics")
