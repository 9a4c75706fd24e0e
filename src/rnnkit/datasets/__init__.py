"""Real data bundled with rnnkit, generated pairs, and readers for archive formats.

Your own files (CSV, TSV, JSONL or plain text) are read and checked by ``read_text_classes``,
``read_series_classes``, ``read_series``, ``read_tagged``, ``read_pairs`` and ``read_corpus``
(``rnnkit.datasets.files``). Nothing is downloaded: each ``load_<name>()`` reads a small gzip file shipped in
``rnnkit/datasets/data/`` (or, for ``load_pydoc_text``, the running Python's own
``pydoc_data``) and returns numpy arrays (str for raw text) with a fixed, documented
split. ``list_datasets()`` gives each set's task, size, source and licence; the data
folder's README.md and LICENSES.md hold the full notes.
"""

from .captions import DIGIT_WORDS as DIGIT_WORDS
from .captions import DigitsCaptions as DigitsCaptions
from .captions import load_digits_captions as load_digits_captions
from .catalog import DatasetInfo as DatasetInfo
from .catalog import list_datasets as list_datasets
from .files import read_corpus as read_corpus
from .files import read_pairs as read_pairs
from .files import read_series as read_series
from .files import read_series_classes as read_series_classes
from .files import read_table as read_table
from .files import read_tagged as read_tagged
from .files import read_text_classes as read_text_classes
from .forecasting import Sunspots as Sunspots
from .long_range import ADDING_TRIVIAL_MSE as ADDING_TRIVIAL_MSE
from .long_range import adding_problem as adding_problem
from .long_range import copy_task as copy_task
from .long_range import copy_task_baseline as copy_task_baseline
from .long_range import sequential_digits as sequential_digits
from .forecasting import load_sunspots as load_sunspots
from .language import PydocText as PydocText
from .language import Sentiment as Sentiment
from .language import load_pydoc_text as load_pydoc_text
from .language import load_sentiment as load_sentiment
from .seq2seq import CMUDict as CMUDict
from .seq2seq import Pairs as Pairs
from .seq2seq import group_pronunciations as group_pronunciations
from .seq2seq import load_cmudict as load_cmudict
from .seq2seq import make_dates as make_dates
from .seq2seq import make_number_words as make_number_words
from .seq2seq import number_to_words as number_to_words
from .ucr import UCR_BUNDLED as UCR_BUNDLED
from .ucr import TSData as TSData
from .ucr import UCRData as UCRData
from .ucr import load_ucr as load_ucr
from .ucr import read_ts as read_ts
from .ucr import read_ucr_tsv as read_ucr_tsv

__all__ = [
    "list_datasets",
    # your own files (CSV, TSV, JSONL, plain text)
    "read_corpus",
    "read_pairs",
    "read_series",
    "read_series_classes",
    "read_table",
    "read_tagged",
    "read_text_classes",
    # long-range tasks (generated)
    "ADDING_TRIVIAL_MSE",
    "adding_problem",
    "copy_task",
    "copy_task_baseline",
    "sequential_digits",
    "DatasetInfo",
    # forecasting
    "load_sunspots",
    "Sunspots",
    # time-series classification
    "load_ucr",
    "read_ts",
    "read_ucr_tsv",
    "UCRData",
    "TSData",
    "UCR_BUNDLED",
    # language modelling and sentiment
    "load_pydoc_text",
    "PydocText",
    "load_sentiment",
    "Sentiment",
    # sequence-to-sequence
    "load_cmudict",
    "CMUDict",
    "group_pronunciations",
    "make_number_words",
    "make_dates",
    "number_to_words",
    "Pairs",
    # one-to-many
    "load_digits_captions",
    "DigitsCaptions",
    "DIGIT_WORDS",
]
