"""rnnkit's Keras front: ``import rnnkit.keras as keras`` instead of ``import keras``.

Keras's names, arguments, defaults and layouts (batch-first), translated onto rnnkit's
cells and engine. Every model is a plain ``torch.nn.Module``.

    from rnnkit.keras import layers, models, callbacks, optimizers, losses, metrics, preprocessing, utils
"""

from . import callbacks as callbacks
from . import layers as layers
from . import losses as losses
from . import metrics as metrics
from . import models as models
from . import optimizers as optimizers
from . import preprocessing as preprocessing
from . import saving as saving
from . import utils as utils
from .layers import Input as Input
from .models import Model as Model
from .models import Sequential as Sequential
from .saving import load_model as load_model

__all__ = [
    "Input", "Model", "Sequential", "callbacks", "layers", "load_model", "losses", "metrics", "models", "optimizers",
    "preprocessing", "saving", "utils",
]
