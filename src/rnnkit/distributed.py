"""Old path of ``rnnkit.keras.training.distributed``, kept as an alias."""

from ._alias import alias

alias(__name__, "rnnkit.keras.training.distributed")
