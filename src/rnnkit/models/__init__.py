"""Ready-made recurrent architectures, built only from ``rnnkit.layers`` and ``rnnkit.Model``.

=================================  =========================  ==========================================
shape of the problem               model                      train with
=================================  =========================  ==========================================
many-to-one (classify)             ``SequenceClassifier``     compile/fit
many-to-one (classify a series)    ``LSTMFCN``                compile/fit
many-to-one, several classifiers   ``Ensemble``               fit the members, then join them
many-to-one (forecast a horizon)   ``Forecaster``             compile/fit (``rnnkit.data.make_windows``)
many-to-many, same length (tag)    ``SequenceTagger``         compile/fit (padding masked)
many-to-many, same length (LM)     ``CharLanguageModel``      compile/fit; ``generate`` samples
many-to-many, different lengths    ``Seq2Seq`` + attention    ``fit_seq2seq`` (teacher-forcing schedule)
one-to-many (vector -> sequence)   ``ConditionalGenerator``   compile/fit; ``generate`` feeds back
one-to-one                         ``OneToOne``               compile/fit
=================================  =========================  ==========================================

Save and load any of them with ``save_model(model, path, **extras)`` / ``load_model(path)``.
``rnnkit.models.tasks`` trains each on the bundled data (the ``rnnkit train`` command).
"""

from .attention import ATTENTION_KINDS as ATTENTION_KINDS
from .attention import Attention as Attention
from .classifier import SequenceClassifier as SequenceClassifier
from .ensemble import Ensemble as Ensemble
from .forecaster import Forecaster as Forecaster
from .generator import ConditionalGenerator as ConditionalGenerator
from .io import load_model as load_model
from .io import save_model as save_model
from .language_model import CharLanguageModel as CharLanguageModel
from .language_model import text_streams as text_streams
from .lstm_fcn import LSTMFCN as LSTMFCN
from .one_to_one import OneToOne as OneToOne
from .sampling import sample_logits as sample_logits
from .scores import edit_distance as edit_distance
from .scores import phoneme_error_rate as phoneme_error_rate
from .scores import sequence_accuracy as sequence_accuracy
from .scores import token_error_rate as token_error_rate
from .scores import word_error_rate as word_error_rate
from .seq2seq import Seq2Seq as Seq2Seq
from .tagger import SequenceTagger as SequenceTagger
from .teacher_forcing import TeacherForcingSchedule as TeacherForcingSchedule
from .teacher_forcing import fit_seq2seq as fit_seq2seq
from .vocab import TokenVocab as TokenVocab

#: Every architecture class, for ``load_model``.
ARCHITECTURES = (SequenceClassifier, LSTMFCN, Ensemble, Forecaster, SequenceTagger, CharLanguageModel, Seq2Seq,
                 ConditionalGenerator, OneToOne)

__all__ = [
    "ARCHITECTURES", "ATTENTION_KINDS", "Attention", "CharLanguageModel", "ConditionalGenerator", "Ensemble", "Forecaster",
    "LSTMFCN", "OneToOne", "Seq2Seq", "SequenceClassifier", "SequenceTagger", "TeacherForcingSchedule", "TokenVocab",
    "edit_distance", "fit_seq2seq", "load_model", "phoneme_error_rate", "sample_logits", "save_model", "text_streams",
    "sequence_accuracy", "token_error_rate", "word_error_rate",
]
