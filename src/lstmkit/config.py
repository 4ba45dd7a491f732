"""Typed run configuration: nested dataclasses loaded strictly from TOML, with dotted overrides.

A config has three tables, ``[data]``, ``[model]`` and ``[train]``. Loading is strict: an unknown key is an
error that names its path, and every value is checked against its field's type and range. Overrides such
as ``--set train.lr=3e-3`` are parsed as TOML values and converted to the field's type, so
``--set model.conv_channels=[32,64]`` and ``--set data.name=fashion-mnist`` both work.

Example::

    cfg = load_config("configs/digits.toml", overrides=["train.epochs=1"])
    cfg.train.epochs   # 1
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import tomli_w

from lstmkit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = [
    "Config",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "build_config",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "read_toml",
]

# TOML integers are 64-bit (the spec asks parsers to reject others; tomllib accepts any size).
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

Activation = Literal["sigmoid", "hard_sigmoid", "tanh", "relu", "elu", "softsign"]


MAX_WIDTH = 2**16
"""The widest LSTM, projection, embedding or head layer a config may ask for (a bound, not a recommendation)."""
MAX_LAYERS = 256
"""The deepest LSTM stack a config may ask for."""


def _positive(**kw: Any) -> dict[str, Any]:
    return {"min": 0, "exclusive": True, **kw}


@dataclass
class DataConfig:
    """``[data]``: where the sequences come from and how they are prepared."""

    name: str = "digits"
    """Registered data source (``lstmkit.data.available_sources()``)."""
    data_dir: str | None = None
    """Folder with the source's files; when absent, the source looks in its usual places."""
    download: bool = True
    """Whether a source may download missing files into the cache."""
    val_fraction: float = field(default=0.1, metadata={"min": 0, "max": 0.9})
    """Fraction of the training split held out for validation and early stopping (forecasting sources hold
    out their latest windows, never a random sample)."""
    normalize: bool = True
    """Standardise each feature with the training split's mean and standard deviation (forecasting: each
    series, with the mean and standard deviation of its training part)."""
    path: str | None = None
    """A user file for sources that read one (a .ts file, a CSV or Parquet series, a text file); see each source."""
    length: int = field(default=0, metadata={"min": 0})
    """Sequence length of generated sources (0: the source's default); for ``text-classification`` the
    most tokens kept per text (0: all), for ``char-lm`` the characters per training window (0: 64)."""
    samples: int = field(default=0, metadata={"min": 0})
    """Training samples of generated sources (0: the source's default)."""
    input_scale: float = field(default=1.0, metadata=_positive())
    """Generated long-lag sources: multiply every input by this (1: the 1997 paper's encoding). The targets
    and criteria do not change; a larger scale acts like larger initial input weights."""
    test_path: str | None = None
    """Text sources: a separate test file in the format of ``path``; when absent, ``test_fraction`` of
    ``path`` is held out (a fixed seeded choice of texts or sentences; the end of the text for ``char-lm``)."""
    test_fraction: float = field(default=0.2, metadata={"min": 0, "max": 0.9, "exclusive": True})
    """Text sources without ``test_path``: the fraction of ``path`` held out as the test split."""
    text_column: str = "text"
    """``text-classification``: the CSV column or JSON key that holds the text."""
    label_column: str = "label"
    """``text-classification``: the CSV column or JSON key that holds the label."""
    tokenizer: Literal["word", "char"] = "word"
    """``text-classification``: split texts into words (runs of letters and digits, and each punctuation
    mark) or into characters. (``tagging`` reads the file's tokens; ``char-lm`` always reads characters.)"""
    lowercase: bool = True
    """Text sources: lowercase texts and tokens before looking them up in the vocabulary."""
    max_vocab: int = field(default=0, metadata={"min": 0})
    """Text sources: keep at most this many of the most frequent training tokens (0: no limit), besides
    ``<pad>`` and ``<unk>``."""
    min_freq: int = field(default=1, metadata={"min": 1})
    """Text sources: keep only tokens seen at least this often in the training split; rarer ones read as
    ``<unk>``."""
    # Forecasting sources (``airline``, ``shampoo-sales``, ``lynx``, ``series``; see ``lstmkit.data.series``)
    window: int = field(default=0, metadata={"min": 0})
    """Forecasting: input steps W per window (0: the source's default)."""
    horizon: int = field(default=0, metadata={"min": 0})
    """Forecasting: steps H predicted from each window (0: the source's default)."""
    test_windows: int = field(default=1, metadata={"min": 1})
    """Forecasting: the test part is the last ``test_windows * horizon`` points of each series."""
    season: int = field(default=0, metadata={"min": 0})
    """Forecasting: the season length m of the seasonal-naive baseline and of MASE (0: the source's own;
    1 for a user file)."""
    log: bool = False
    """Forecasting: model ``log(y)`` instead of ``y`` (positive series whose swings grow with the level)."""
    log_offset: float = field(default=0.0, metadata={"min": 0})
    """Forecasting, with ``log``: model ``log(y + log_offset)`` and take it off the forecasts; 1 (``log1p``)
    takes counts and sales that hold zeros, which the plain log (0) refuses."""
    difference: int = field(default=0, metadata={"min": 0})
    """Forecasting: model differences ``y_t - y_{t-d}`` at this lag (0: none, 1: steps, 12: monthly seasons),
    after the log; forecasts are integrated back."""
    level: int = field(default=0, metadata={"min": 0})
    """Forecasting: take each window's level, the mean of its last ``level`` scaled points, out of its inputs
    and targets, and add it back to the forecasts (0: none; a season, 12 for months, is the usual choice).
    The network then sees and predicts values relative to the recent level (ES-RNN, N-BEATS, DeepAR do the
    same); with ``log`` and ``difference = 0`` the targets are relative log levels, not changes to add up."""
    pooled: bool = False
    """Forecasting from a file: train one network on the windows of every series (a *global* model, as
    ES-RNN, N-BEATS and DeepAR are), instead of one joint network over aligned series. The series may
    have different lengths and times; each sample is one window of one series, made scale-free by
    ``log`` and location-free by ``level`` or ``difference`` (both required), and every series is scored
    on its own last ``test_windows * horizon`` points (``lstmkit.data.pooled``)."""
    series: list[str] = field(default_factory=list)
    """Forecasting from a file: the series to use, by column name (wide) or id (long); empty: all of them."""
    time_column: str = ""
    """Forecasting from a file: the time column (empty: the first column)."""
    format: Literal["auto", "wide", "long"] = "auto"
    """Forecasting from a file: ``wide`` (time, one column per series), ``long`` (time, id, value rows), or
    ``auto`` (long when the file has the columns ``id_column`` and ``value_column``)."""
    id_column: str = "id"
    """Forecasting from a long file: the column naming each row's series."""
    value_column: str = "value"
    """Forecasting from a long file: the column holding the values."""
    # Audio (``audio-folder``: recordings named {label}_{speaker}_{index}.wav; see ``lstmkit.data.audio_folder``)
    split: Literal["official", "speaker"] = "official"
    """``audio-folder``: ``official`` tests the recordings with index 0-4 (FSDD's own split); ``speaker`` tests
    the recordings of ``test_speakers`` and trains on everyone else's."""
    test_speakers: list[str] = field(default_factory=list)
    """``audio-folder`` with ``split = "speaker"``: the speakers held out as the test split."""
    features: Literal["mfcc", "fbank"] = "mfcc"
    """``audio-folder``: the front end, MFCCs or log-mel filterbank energies (``lstmkit.data.audio``)."""
    mel_bins: int = field(default=0, metadata={"min": 0, "max": 256})
    """``audio-folder``: mel filters (0: 23 for MFCCs, 40 for filterbanks)."""
    num_ceps: int = field(default=13, metadata=_positive(max=256))
    """``audio-folder``: MFCC coefficients per frame (at most ``mel_bins``)."""
    frame_length_ms: float = field(default=25.0, metadata={"min": 1, "max": 1000})
    """``audio-folder``: the window of each feature frame, in milliseconds."""
    frame_shift_ms: float = field(default=10.0, metadata={"min": 1, "max": 1000})
    """``audio-folder``: the step between feature frames, in milliseconds (one LSTM step each)."""
    cmn: Literal["none", "mean", "mean-variance", "speaker"] = "none"
    """``audio-folder``: cepstral mean (and variance) normalisation of the features (``lstmkit.data.audio``):
    per recording (``"mean"``, ``"mean-variance"``), or ``"speaker"``, mean and variance over all of a speaker's
    recordings (the file names' speakers; ``lstmkit predict`` takes its ``.wav`` files as one speaker's). It needs
    whole recordings, so a model trained with it cannot stream."""


@dataclass
class ModelConfig:
    """``[model]``: the task model, its optional conv front end and its LSTM stack."""

    task: str = "classifier"
    """Registered task model (``lstmkit.models.available_models()``)."""
    hidden_size: int = field(default=128, metadata=_positive(max=MAX_WIDTH))
    """Features H of the cell state (and of the hidden state, unless ``proj_size`` projects it) in each layer."""
    num_layers: int = field(default=1, metadata=_positive(max=MAX_LAYERS))
    """Stacked LSTM layers."""
    bidirectional: bool = False
    """Each layer also runs backward in time; ``merge_mode`` combines the two directions."""
    dropout: float = field(default=0.0, metadata={"min": 0, "max": 1})
    """Dropout between stacked LSTM layers, as in ``torch.nn.LSTM``."""
    proj_size: int = field(default=0, metadata={"min": 0, "max": MAX_WIDTH})
    """Project each hidden state to this many features (smaller than ``hidden_size``); 0: no projection."""
    gate_activation: Activation = "sigmoid"
    """Activation of the input, forget and output gates."""
    cell_activation: Activation = "tanh"
    """Activation of the candidate cell values g_t."""
    hidden_activation: Activation = "tanh"
    """Activation of the cell state in h_t = o_t * act(c_t)."""
    forget_bias: float = 1.0
    """Initial forget-gate bias with ``init = "default"`` (ignored with ``init = "torch"`` or ``chrono_init``)."""
    init: Literal["default", "torch"] = "default"
    """``default``: Xavier input weights, orthogonal recurrent weights, the forget-gate bias ``forget_bias``;
    ``torch``: ``torch.nn.LSTM``'s uniform initialisation (the same seed gives the same parameters)."""
    chrono_init: int = field(default=0, metadata={"min": 0})
    """Chrono initialisation of the gate biases (Tallec & Ollivier 2018) for lags up to this many steps:
    forget-gate biases log U[1, chrono_init - 1], input-gate biases their negatives; replaces
    ``forget_bias``. 0: off (see ``lstmkit.nn.LSTM``)."""
    # LSTM variants (see ``lstmkit.nn.LSTM``); all off by default.
    peephole: bool = False
    """Peephole connections from the cell state to the gates."""
    coupled_gates: bool = False
    """Couple the input and forget gates (CIFG): f_t = 1 - i_t."""
    layer_norm: bool = False
    """Layer-normalise the gate pre-activations and the cell state."""
    recurrent_dropout: float = field(default=0.0, metadata={"min": 0})
    """Probability in [0, 1) of per-sequence (variational) dropout on h_(t-1)."""
    zoneout: float | list[float] = 0.0
    """Zoneout probability on h and c, or ``[p_h, p_c]``."""
    weight_drop: float = field(default=0.0, metadata={"min": 0})
    """Probability in [0, 1) of DropConnect on the recurrent weights ``weight_hh``."""
    cell_clip: float | None = None
    """Clip the cell state to [-cell_clip, cell_clip]; unset means no clipping."""
    residual: bool = False
    """Add each layer's input to its output, for every layer after the first."""
    merge_mode: Literal["concat", "sum", "mean"] = "concat"
    """How a bidirectional layer merges its two directions."""
    conv: Literal["none", "conv1d", "conv2d"] = "none"
    """Optional front end: ``conv1d`` convolves along time, ``conv2d`` convolves an image before its rows are read."""
    conv_channels: list[int] = field(default_factory=lambda: [32])
    """Output channels of each conv layer of the front end (one layer per entry)."""
    conv_kernel: int = field(default=3, metadata=_positive(max=1024))
    """Kernel size of the conv layers."""
    pool: int = field(default=2, metadata=_positive(max=1024))
    """Max-pooling size after each conv layer (1 turns pooling off)."""
    architecture: Literal["lstm", "lstm-fcn", "mlstm-fcn"] = "lstm"
    """Classifiers and regressors: ``lstm`` (the optional conv front end, the LSTM stack, a readout);
    ``lstm-fcn`` (Karim et al. 2018) or ``mlstm-fcn`` (Karim et al. 2019, with squeeze-and-excitation): an
    LSTM branch over the dimension-shuffled input beside a fully convolutional branch (see
    ``lstmkit.models.lstm_fcn``). The FCN models ignore ``conv``, ``pool`` and ``readout``."""
    fcn_filters: list[int] = field(default_factory=lambda: [128, 256, 128])
    """LSTM-FCN: output channels of each convolution block of the fully convolutional branch."""
    fcn_kernels: list[int] = field(default_factory=lambda: [8, 5, 3])
    """LSTM-FCN: kernel size of each convolution block (as many as ``fcn_filters``)."""
    shuffle_length: int = field(default=0, metadata={"min": 0, "max": MAX_WIDTH})
    """LSTM-FCN: the length T of each variable's series that the dimension-shuffled LSTM branch reads as one
    step; 0: the data's fixed length. Variable-length data needs it: shorter series are zero-padded to T,
    longer ones cut."""
    shuffle_dropout: float = field(default=0.8, metadata={"min": 0, "max": 1})
    """LSTM-FCN: dropout on the LSTM branch's output before the two branches are joined (0.8 in the papers)."""
    readout: Literal["last", "mean", "max"] = "last"
    """How the sequence of LSTM outputs becomes one vector: last real step, mean or max over real steps."""
    vocab_size: int = field(default=0, metadata={"min": 0, "max": 2**24})
    """Token models (``text-classifier``, ``tagger``, ``char-lm``): rows of the embedding table, ``<pad>`` and
    ``<unk>`` included. 0 lets a text data source set it from its vocabulary (``lstmkit train`` does)."""
    embedding_size: int = field(default=64, metadata=_positive(max=MAX_WIDTH))
    """Token models: the width E of each token's embedding vector."""
    embedding_dropout: float = field(default=0.0, metadata={"min": 0, "max": 1})
    """Token models: dropout on the embeddings before the LSTM."""
    head_hidden: int = field(default=0, metadata={"min": 0, "max": MAX_WIDTH})
    """Width of an extra dense ReLU layer before the output layer; 0 means none."""
    head_dropout: float = field(default=0.0, metadata={"min": 0, "max": 1})
    """Dropout before the output layer."""
    loss: Literal["auto", "cross_entropy", "mse", "mae", "huber"] = "auto"
    """The training loss; ``auto`` takes the task's own (cross-entropy for classifiers, MSE for regressors)."""
    label_smoothing: float = field(default=0.0, metadata={"min": 0, "max": 1})
    """Label smoothing of the cross-entropy loss (classifiers)."""


@dataclass
class TrainConfig:
    """``[train]``: optimiser, schedule and the training loop."""

    epochs: int = field(default=20, metadata=_positive())
    """Passes over the training split (the most, with early stopping)."""
    batch_size: int = field(default=64, metadata=_positive())
    """Sequences per batch (with ``--nproc N``, split over the N processes: a multiple of N)."""
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    """The optimiser: Adam, AdamW (decoupled weight decay) or SGD with ``momentum``."""
    lr: float = field(default=1e-3, metadata=_positive(max=1e3))
    """Learning rate (the peak rate for ``schedule = "onecycle"``)."""
    momentum: float = field(default=0.9, metadata={"min": 0, "max": 1})
    """SGD momentum (ignored by Adam and AdamW)."""
    weight_decay: float = field(default=0.0, metadata={"min": 0, "max": 1e3})
    """Weight decay (L2 penalty; decoupled for AdamW)."""
    schedule: Literal["constant", "cosine", "step", "onecycle"] = "constant"
    """Learning-rate schedule over the epochs: constant, cosine annealing, step decay (``step_size``, ``gamma``) or
    one-cycle. With ``max_minutes``, cosine annealing runs over the time budget instead."""
    max_minutes: float = field(default=0.0, metadata={"min": 0, "max": 1e6})
    """A time budget: training stops at the first batch that ends past this many minutes of training batches
    (validation not counted) on ``budget_clock``; the epoch in progress closes there, validated and logged, and
    is the last. ``schedule = "cosine"`` then decays over the budget: ``lr_t = lr (1 + cos(pi min(t / budget,
    1))) / 2``. 0: no budget (``epochs`` alone decides)."""
    budget_clock: Literal["wall", "cpu"] = "wall"
    """The clock of ``max_minutes``: ``wall`` seconds, or this process's ``cpu`` seconds (all its threads), which
    other processes on a busy machine do not inflate (to give two models the same compute)."""
    step_size: int = field(default=10, metadata=_positive())
    """Epochs between decays for ``schedule = "step"``."""
    gamma: float = field(default=0.1, metadata=_positive(max=1e3))
    """Factor of each decay for ``schedule = "step"``."""
    grad_clip: float = field(default=1.0, metadata={"min": 0})
    """Maximum global gradient norm; 0 turns clipping off."""
    patience: int = field(default=0, metadata={"min": 0})
    """Early stopping: epochs without validation improvement before stopping; 0 turns it off."""
    monitor: Literal["auto", "val_loss", "val_accuracy", "val_mae", "val_rmse"] = "auto"
    """The validation metric that picks the best epoch; ``auto`` is val_accuracy for classifiers, else val_loss."""
    seed: int = field(default=0, metadata={"min": 0, "max": 2**32 - 1})
    """Seeds Python, NumPy and PyTorch; NumPy and scikit-learn take at most 2**32 - 1."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train: ``auto`` takes the GPU when there is one, else the CPU."""
    num_threads: int = field(default=0, metadata={"min": 0, "max": 1024})
    """CPU threads for PyTorch; 0 keeps PyTorch's default (a huge count aborts the OpenMP runtime)."""
    progress: bool = True
    """Show a progress bar with loss and accuracy."""
    checkpoint_every: int = field(default=0, metadata={"min": 0})
    """Also write ``checkpoints/last.pt`` every this many batches (0: only at the end of each epoch)."""
    deterministic: bool = True
    """Ask PyTorch for deterministic kernels, so the same seed gives bit-identical weights on the CPU."""
    statistical: bool = True
    """Forecasting runs: also fit AutoETS and AutoARIMA (``lstmkit[stats]``) to each series before each test
    window and score them beside the LSTM; ``false`` skips them. The fits take seconds per series and window
    (``lstmkit.evaluation.statistical``; many are fitted side by side, one process per CPU core), so runs
    over many series or windows may want them off."""
    report: bool = True
    """Write the HTML run report (``report.html``: curves, evaluation, gate and cell views) at the end."""
    tensorboard: bool = True
    """Write TensorBoard event files into the run folder's ``tensorboard/`` when tensorboard is installed."""


@dataclass
class Config:
    """A whole run: ``[data]``, ``[model]`` and ``[train]``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------------------
# Conversion and checking


def _describe(value: Any) -> str:
    if isinstance(value, str):  # quoted, with newlines and other unprintables escaped to keep one line
        return '"' + "".join(c if c.isprintable() else repr(c)[1:-1] for c in value) + '"'
    return repr(value)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(f'"{a}"' for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        (item,) = typing.get_args(tp)
        return f"a list of {_type_name(item)}s"
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to type ``tp``, or raise a ConfigError naming ``where``."""

    def fail() -> typing.NoReturn:
        raise ConfigError(f"config {where}: expected {_type_name(tp)}, got {_describe(value)}")

    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        for option in options:
            try:
                return _convert(value, option, where)
            except ConfigError:
                continue
        fail()
    if origin is Literal:
        if isinstance(value, str) and value in typing.get_args(tp):
            return value
        fail()
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if not isinstance(value, list):
            fail()
        return [_convert(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        fail()
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        fail()  # beyond TOML's 64-bit integers (and too large for a float)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and _INT64_MIN <= value < 2.0**63:
            return int(value)
        fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        fail()
    if tp is str:
        if isinstance(value, str):
            return value
        fail()
    raise TypeError(f"unsupported config field type {tp!r}")  # internal: a field type we forgot


def _check_range(value: Any, meta: typing.Mapping[str, Any], tp: Any, where: str) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    noun = "integer" if tp is int else "float"
    if lo is not None and meta.get("exclusive") and value <= lo:
        expected = f"a positive {noun}" if lo == 0 else f"a {noun} > {lo}"
        raise ConfigError(f"config {where}: expected {expected}, got {_describe(value)}")
    if lo is not None and value < lo:
        expected = f"a non-negative {noun}" if lo == 0 else f"a {noun} >= {lo}"
        raise ConfigError(f"config {where}: expected {expected}, got {_describe(value)}")
    if hi is not None and value > hi:
        raise ConfigError(f"config {where}: expected {'an' if tp is int else 'a'} {noun} <= {hi}, "
                          f"got {_describe(value)}")


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"config {where}: expected a table, got {_describe(table)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"config: unknown key {key!r}; known keys{' in ' + where if where else ''}: "
                          + ", ".join(fields))
    kwargs = {}
    for name, value in table.items():
        tp = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key)
            continue
        section, _, leaf = key.rpartition(".")
        label = f"[{section}] {leaf}" if section else leaf
        meta = fields[name].metadata
        try:
            converted = _convert(value, tp, label)
        except ConfigError:
            if tp in (int, float) and meta.get("exclusive") and meta.get("min") == 0:
                noun = "integer" if tp is int else "float"
                raise ConfigError(f"config {label}: expected a positive {noun}, got {_describe(value)}") from None
            raise
        if converted is not None:
            _check_range(converted, meta, tp, label)
        kwargs[name] = converted
    return cls(**kwargs)


def build_config(cls: type, table: dict[str, Any]) -> Any:
    """The dataclass ``cls`` (a task's config) from nested tables, as strictly as ``config_from_dict``:
    unknown keys and wrongly typed values are errors that name the key."""
    return _build(cls, table, "")


def config_from_dict(table: dict[str, Any]) -> Config:
    """Build a ``Config`` from nested dicts (as parsed from TOML), strictly."""
    return _build(Config, table, "")


def config_to_dict(config: Config) -> dict[str, Any]:
    """The config as nested dicts, with unset optional values (``None``) left out, as TOML needs."""

    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    return strip(dataclasses.asdict(config))


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, such as train.lr=3e-3")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override {text!r}: expected a dotted key such as train.lr, got {key!r}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as fashion-mnist is a string
    except RecursionError:
        raise ConfigError(f"override {key!r}: expected a TOML value, got one nested too deeply") from None
    return parts, value


def apply_overrides(table: dict[str, Any], overrides: typing.Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``table`` with each ``a.b=value`` override set (checked later, when built)."""
    result = {k: dict(v) if isinstance(v, dict) else v for k, v in table.items()}
    for text in overrides:
        parts, value = _parse_override(text)
        node = result
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a table")
            node = child
        node[parts[-1]] = value
    return result


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tables of a TOML file, unchecked: the one place that reads a recipe from disk.

    Raises:
        ConfigError: the file is missing, unreadable or not valid TOML (the message names the file).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"config file {path}: not valid TOML (arrays or tables nested too deeply)") from None


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Load a TOML config file (or the defaults when ``path`` is None) and apply dotted overrides."""
    table = read_toml(path) if path is not None else {}
    return config_from_dict(apply_overrides(table, overrides))


def dump_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as TOML to ``path``."""
    Path(path).write_text(tomli_w.dumps(config_to_dict(config)), encoding="utf-8")
