"""The time loop and its hand-derived backpropagation through time."""

from .kernels import release_cached_memory as release_cached_memory
from .masks import recurrent_dropout_mask as recurrent_dropout_mask
from .masks import zoneout_keep as zoneout_keep
from .recurrence import Recurrence as Recurrence
from .sequence import lengths_to_mask as lengths_to_mask
from .sequence import run as run
from .stream import Streamer as Streamer
from .stream import step as step

__all__ = ["Recurrence", "lengths_to_mask", "recurrent_dropout_mask", "release_cached_memory", "Streamer", "run", "step", "zoneout_keep"]
