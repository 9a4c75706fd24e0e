"""Old path of ``rnnkit.keras.callbacks``, kept as an alias."""

from ._alias import alias

alias(__name__, "rnnkit.keras.callbacks")
