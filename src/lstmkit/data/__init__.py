"""Data sources (one module per source, found through a registry), transforms and input readers.

Importing this package registers the built-in sources ``digits``, ``mnist`` and ``fashion-mnist``, the
UCR/UEA sources (``lstmkit.data.ucr``), the generated long-time-lag tasks (``lstmkit.data.longlag``), the
text sources ``text-classification``, ``tagging`` and ``char-lm`` (``lstmkit.data.text``) and the
forecasting sources ``airline``, ``shampoo-sales``, ``lynx`` and ``series`` (a user's CSV or Parquet file), and
``audio-folder`` (labelled WAV recordings such as the Free Spoken Digit Dataset, ``lstmkit.data.audio_folder``).
See ``lstmkit/data/template.py`` for how to add a source.
"""

from lstmkit.data.base import ArrayDataset, SourceData, available_sources, load_source, register_source
from lstmkit.data.idx import read_idx, write_idx
from lstmkit.data.inputs import read_inputs, read_sequences
from lstmkit.data.timeseries import Series, read_series
from lstmkit.data.transforms import Standardizer, check_finite, split_train_val
from lstmkit.data import audio_folder, digits, forecast_sources, idx, longlag, text, ucr  # noqa: F401  (registers the sources)

__all__ = [
    "ArrayDataset",
    "SourceData",
    "load_source",
    "available_sources",
    "register_source",
    "Standardizer",
    "check_finite",
    "split_train_val",
    "read_inputs",
    "read_sequences",
    "read_series",
    "Series",
    "read_idx",
    "write_idx",
]
