"""The sequence models: classifiers, regressors and forecasters, text classifiers, taggers, language models.

Every ``[model] task`` of ``lstmkit.models`` trains here: a data source (``lstmkit.data``) gives
``ArrayDataset`` splits of sequences ``(N, L, F)`` with class or value targets, ``lstmkit.tasks.sequence_model.Model``
fits the preprocessing and builds the network, and the objective of the model's loss trains and judges it.

Test evaluation: accuracy, macro precision/recall/F1, the per-class table and the confusion matrix for
classifiers; MAE and RMSE for regressors; for a forecasting source, the forecasts beside the naive
baselines and the statistical forecasters (``lstmkit.tasks.forecast_evaluation``); plus the task model's
headline metrics (token F1, bits per character).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Iterable

from lstmkit.config import Config, apply_overrides, config_from_dict
from lstmkit.errors import ConfigError, LstmkitError
from lstmkit.tasks import Evaluation, Job, Task, metrics_text, register_task
from lstmkit.tasks.schema import Port, Schema

log = logging.getLogger(__name__)

__all__ = ["SequenceTask", "apply_source_settings", "MAX_PLOTTED_CLASSES"]

MAX_PLOTTED_CLASSES = 40
"""Above this many classes (a character LM's vocabulary) the confusion matrix is written as text only."""


def apply_source_settings(config: Config, source: Any) -> Config:
    """``config`` with the ``[model]`` keys that the data decides (``source.model_settings``, such as a text
    source's ``vocab_size``) filled in where the config leaves them unset (0); a different value is an error."""
    changes = {}
    for key, value in source.model_settings.items():
        current = getattr(config.model, key)
        if current in (0, None):
            changes[key] = value
        elif current != value:
            raise ConfigError(f"config [model] {key}: the data source {source.name!r} gives {value}, got {current}; "
                              f"leave it unset (0) to take the data's")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **changes)) if changes else config


def _write_evaluation(model: Any, config: Config, source: Any, run: Any) -> dict[str, Any]:
    """Test-split metrics, plus the per-class report and confusion matrix for classifiers."""
    from lstmkit.evaluation.classification import format_classification_report

    if source.forecast is not None:  # forecasting sources: LSTM vs naive baselines, forecast.csv and .png
        from lstmkit.tasks.forecast_evaluation import write_forecast_evaluation

        return write_forecast_evaluation(model, config, source, run.root)
    report = model.evaluate(source.test)
    if model.objective.targets == "classes":
        run.evaluation_txt.write_text(format_classification_report(report) + "\n")
        if len(model.label_names) <= MAX_PLOTTED_CLASSES:
            from lstmkit.report.plots import plot_confusion_matrix

            plot_confusion_matrix(report["confusion_matrix"], model.label_names, run.confusion_matrix_png,
                                  title=f"{config.data.name}: test confusion matrix")
        metrics = {"test_accuracy": report["accuracy"], "test_precision_macro": report["precision_macro"],
                   "test_recall_macro": report["recall_macro"], "test_f1_macro": report["f1_macro"]}
    else:
        metrics = {"test_mae": report["mae"], "test_rmse": report["rmse"]}
        run.evaluation_txt.write_text(
            f"test MAE {report['mae']:.6g}   test RMSE {report['rmse']:.6g}   ({len(source.test)} samples)\n")
    metrics.update({f"test_{key}": report[key] for key in model.objective.headline})
    run.evaluation_json.write_text(json.dumps(report, indent=2))
    return {**metrics, "test_loss": report["loss"]}


@register_task("sequence")
class SequenceTask(Task):
    """The models of ``lstmkit.models`` on the data sources of ``lstmkit.data``."""

    gate_views = True
    predicts_files = True
    verbs = "lstmkit predict MODEL FILE (forecasters: lstmkit forecast MODEL; char-lm: lstmkit generate MODEL)"

    def config_from_table(self, table: dict[str, Any], overrides: Iterable[str] = ()) -> Config:
        return config_from_dict(apply_overrides(table, overrides))

    def prepare(self, config: Config) -> Job:
        from lstmkit.data.prepare import load_splits
        from lstmkit.tasks.sequence_model import Model

        source, train, val = load_splits(config.data, config.train.seed)
        config = apply_source_settings(config, source)
        model = Model(config)
        # Build (and try) the network before the run folder exists: a config that cannot work on this data
        # fails with nothing written.
        train, val = model.training_data(train, val, source.label_names, source.image_shape)

        def finish(run: Any) -> dict[str, Any]:
            metrics = _write_evaluation(model, config, source, run)
            extra = {} if source.forecast is None else {"forecast": source.forecast.to_meta()}
            if source.label_names:  # the labels it learnt are indices into label_names, of this integer type
                extra["label_dtype"] = train.y.dtype.str
            model.save(run.model, extra_meta={**source.meta, "data_name": config.data.name,
                                              "pixel_max": source.pixel_max, **extra})
            return metrics

        return Job(config=config, module=model.module, objective=model.objective, train=train, val=val,
                   finish=finish, extra={"model": model})

    def load(self, folder: Path) -> Any:
        from lstmkit.tasks.sequence_model import Model
        from lstmkit.artifacts.model_folder import load_model

        loaded = load_model(folder)
        if "tokenizer" in loaded.meta:
            from lstmkit.tasks.text import TextModel

            return TextModel.from_loaded(loaded, folder)
        if "forecast" in loaded.meta:
            from lstmkit.tasks.forecasting import SavedForecaster

            return SavedForecaster(folder, Model.from_loaded(loaded))
        return Model.from_loaded(loaded)

    def evaluate(self, folder: Path, split: str = "test", data: str | None = None, data_dir: Path | None = None,
                 download: bool = True) -> Evaluation:
        """Classifiers: accuracy, macro precision/recall/F1, the per-class table and confusion matrix;
        regressors: MSE, MAE, RMSE; forecasters: MAE, RMSE, sMAPE and MASE beside the naive baselines on the
        test windows; taggers, language models and the 1997 tasks: their objective's report (token F1,
        bits per character, the long-lag criterion's accuracies)."""
        from lstmkit.data import load_source
        from lstmkit.evaluation.classification import format_classification_report
        from lstmkit.tasks.sequence_model import Model
        from lstmkit.artifacts.model_folder import load_model
        from lstmkit.models.objectives import Classification

        model = Model.from_loaded(load_model(folder))
        name = data or model.meta.get("data_name")
        if not name:
            raise LstmkitError("evaluate: the model folder does not name its dataset; pass --data NAME")
        # The dataset it was trained on is read with the [data] table it was trained with (file, columns, ...).
        config = model.config.data if name == model.config.data.name else None
        source = load_source(name, data_dir=data_dir, download=download, config=config)
        rows = source.test if split == "test" else source.train
        title = f"{name} ({split} split, {len(rows)} samples)"
        if source.forecast is not None and split == "test":
            from lstmkit.tasks.forecast_evaluation import backtest, format_backtest

            result = backtest(source.forecast, model.predict(rows.x).reshape(len(rows), -1),
                              statistical=model.config.train.statistical)
            return Evaluation({"data": name, "split": split, "metrics": result.metrics},
                              f"{title}\n{format_backtest(result)}")
        report = model.evaluate(rows)
        if type(model.objective) is Classification:
            return Evaluation({"data": name, "split": split, **report},
                              f"{title}\n{format_classification_report(report)}",
                              confusion=(report["confusion_matrix"], model.label_names))
        return Evaluation({"data": name, "split": split, **report}, metrics_text(title, report))

    def predict_inputs(self, folder: Path, sources: list[str], texts: list[str], invert: bool = False) -> list[dict]:
        """Classifiers: the label, its probability and every class's; regressors and per-step models: their
        values; text models: labels (or tags) of texts given directly or as files of one text per line.
        Sequences of any length for variable-length models (``lstmkit.data.read_sequences``); ``.wav`` files for
        models trained on audio, through the front end saved with them (``lstmkit.data.audio``)."""
        import numpy as np

        from lstmkit.data import read_sequences
        from lstmkit.tasks.sequence_model import Model
        from lstmkit.artifacts.model_folder import load_model

        loaded = load_model(folder)
        if "forecast" in loaded.meta:
            raise LstmkitError(f"predict {folder}: expected a classifier's model folder, got a forecaster's; "
                               f"use lstmkit forecast {folder} (--backtest compares with the actual values)")
        if texts or "tokenizer" in loaded.meta:
            return _predict_texts(loaded, folder, sources, texts)
        if not sources:
            raise LstmkitError("predict: expected input files (or - for CSV on stdin)")
        length, features = loaded.input_shape
        image_shape = loaded.meta.get("image_shape")
        results: list[dict] = []
        audio = _wav_features(loaded.meta.get("audio_front_end"), sources)
        for source in sources:
            if source in audio:  # through the front end the model was trained with
                x, lengths = audio[source][None], None  # (1, T, F)
            else:
                x, lengths = read_sequences(source, length, features,
                                            image_shape=tuple(image_shape) if image_shape else None,
                                            pixel_max=loaded.meta.get("pixel_max"), invert=invert)
            if loaded.meta.get("targets") == "values":  # regressors and per-step models: their values
                values = Model.from_loaded(loaded).predict(x, lengths)
                results += [{"input": str(source), "index": i, "values": np.asarray(v).tolist()}
                            for i, v in enumerate(values)]
                continue
            for index, row in enumerate(loaded.predict_proba(x, lengths)):
                best = int(row.argmax())
                results.append({"input": str(source), "index": index, "label": loaded.label_names[best],
                                "probability": float(row[best]),
                                "probabilities": {name: float(p) for name, p in zip(loaded.label_names, row)}})
        return results

    def schema(self, meta: dict[str, Any], config: Config) -> Schema:
        """Raw sequences (or texts, for a model with a tokenizer) in; per sequence or per step, class
        probabilities (classifiers) or values (regressors, forecasters, next-symbol sets) out."""
        from lstmkit.models import model_objective

        objective = model_objective(config.model)
        length = meta.get("sequence_length") or "L"
        labels = tuple(meta.get("label_names") or ())
        if "forecast" in meta:
            forecast = meta["forecast"]
            series = len(forecast.get("series") or []) or 1
            return Schema(
                inputs=(Port("history", "float32", ("N", "L", series), f"the most recent values of each series on "
                             f"the original scale, at least the window of {forecast['window']}"),),
                outputs=(Port("forecast", "float64", ("N", int(forecast["horizon"]), series),
                              "the next values of each series, on the original scale (float64: the scaling is "
                              "undone in double precision, as levels can be large)"),), verb="forecast")
        if "tokenizer" in meta:
            inputs: tuple[Port, ...] = (Port("texts", "string", ("N",), "one text per sample, tokenised as in "
                                             "training"),)
        else:
            inputs = (Port("sequences", "float32", ("N", length, int(meta["input_size"])),
                           "raw values of each step, as the data source gives them"),)
            if meta.get("sequence_length") is None:
                inputs += (Port("lengths", "int64", ("N",), "the real steps of each zero-padded sequence"),)
        steps = ("N", "L") if objective.per_step else ("N",)
        outputs = objective.output_width(int(meta["num_outputs"]), int(meta["input_size"]))
        if objective.targets == "classes":
            out = Port("probabilities", "float32", (*steps, outputs), "class probabilities, in the order of labels")
        else:
            out = Port("values", "float32", (*steps, outputs), "predicted values")
        verb = "generate" if config.model.task == "char-lm" else "predict"  # a language model continues text
        return Schema(inputs=inputs, outputs=(out,), labels=labels, verb=verb)


def _text_lines(source: str) -> list[str]:
    import sys

    if source == "-":
        return [line for line in sys.stdin.read().splitlines() if line.strip()]
    try:
        return [line for line in Path(source).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise LstmkitError(f"predict {source}: expected a UTF-8 text file, one text per line ({exc})") from None


def _predict_texts(loaded: Any, folder: Path, sources: list[str], texts: list[str]) -> list[dict]:
    from lstmkit.tasks.text import TextModel

    model = TextModel.from_loaded(loaded, folder)
    items = [("--text", i, text) for i, text in enumerate(texts)]
    for source in sources:
        items += [(source, i, text) for i, text in enumerate(_text_lines(source))]
    if not items:
        raise LstmkitError("predict: expected --text TEXT or text files (one text per line)")
    return [{"input": source, "index": i, "text": text, **r}
            for (source, i, text), r in zip(items, model.predict([text for _, _, text in items]))]


def _wav_features(front_end: dict[str, Any] | None, sources: list[str]) -> dict[str, Any]:
    """The features of the ``.wav`` files among ``sources``, by source, through the model's audio front end.

    With ``cmn = "speaker"`` the files are taken as recordings of one speaker and normalised together
    (``lstmkit.data.audio.normalize_speaker``), so that needs at least two of them.

    Raises:
        LstmkitError: a ``.wav`` file for a model not trained on audio, or a single file for a speaker-normalised one.
    """
    wavs = [source for source in sources if Path(source).suffix.lower() == ".wav"]
    if not wavs:
        return {}
    if front_end is None:
        raise LstmkitError(f"predict {wavs[0]}: expected the sequences this model reads (.npy or .csv), "
                           "got a .wav file, but the model was not trained on audio")
    from lstmkit.data.audio import FrontEnd, normalize_speaker

    front = FrontEnd.from_meta(front_end)
    features = [front.file_features(path) for path in wavs]
    if front.cmn == "speaker":
        if len(wavs) < 2:
            raise LstmkitError(f'predict {wavs[0]}: this model normalises its features by a speaker\'s statistics '
                               f'over several recordings ([data] cmn = "speaker"); expected two or more .wav files of '
                               f"the same speaker, got {len(wavs)}")
        log.info("normalising the %d .wav files together as one speaker's recordings (cmn = \"speaker\")", len(wavs))
        features = normalize_speaker(features)
    return dict(zip(wavs, features))
