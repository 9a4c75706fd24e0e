"""Training recipes on the bundled data, one per task of ``rnnkit train <task>``.

Each recipe loads its data set, builds a model from ``rnnkit.models``, trains it
with progress bars, scores it on the test split beside a simple baseline, and
``train_task`` saves the model (``model.safetensors`` + ``model.json``), the
learning curves (``curves.png``) and ``results.json`` in the output directory.
The tasks in ``own`` run the same recipes on a user's files (``--data FILE``).
"""

from .base import Context as Context
from .base import Run as Run
from .base import Score as Score
from .base import Task as Task
from .base import load_task_model as load_task_model
from .base import train_task as train_task
from .classify import SentimentTask, UCRTask
from .digits import CaptionsTask, DigitsTask
from .forecast import SunspotsTask
from .language import CharLMTask, SegmentTask
from .own import FILE_TASKS
from .translate import CMUDictTask, DatesTask, NumbersTask, Seq2SeqTask

#: The tasks on bundled data, by name.
BUNDLED_TASKS: dict[str, Task] = {t.name: t for t in (
    SentimentTask(), SunspotsTask(), UCRTask(), CharLMTask(), SegmentTask(), CMUDictTask(), NumbersTask(),
    DatesTask(), CaptionsTask(), DigitsTask(),
)}

#: The tasks on a user's files (``--data FILE``), by name.
OWN_DATA_TASKS: dict[str, Task] = {t.name: t for t in FILE_TASKS}

#: Every task by name, in the order ``rnnkit train --help`` lists them.
TASKS: dict[str, Task] = {**BUNDLED_TASKS, **OWN_DATA_TASKS}

#: The task ``rnnkit train`` runs in the README's first command.
DEFAULT_TASK = "sentiment"

__all__ = ["BUNDLED_TASKS", "Context", "DEFAULT_TASK", "OWN_DATA_TASKS", "Run", "Score", "Seq2SeqTask", "TASKS", "Task", "load_task_model", "train_task"]
