import json

import numpy as np
import pytest
import torch

from lstmkit.config import Config, ModelConfig
from lstmkit.data import Standardizer
from lstmkit.errors import DataError, ModelFolderError
from lstmkit.model_folder import load_model, save_model
from lstmkit.models import InputSpec, build_model

SPEC = InputSpec(input_size=4, num_outputs=3, sequence_length=5)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    config = Config(model=ModelConfig(hidden_size=6, bidirectional=True))
    module = build_model(config.model, SPEC).eval()
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(7, 5, 4)).astype(np.float32)
    standardizer = Standardizer().fit(x)
    folder = save_model(tmp_path / "model", module, config, SPEC, ["a", "b", "c"], standardizer)
    return folder, module, standardizer, x


def test_round_trip_gives_identical_predictions(saved):
    folder, module, standardizer, x = saved
    model = load_model(folder)
    expected = torch.softmax(module(torch.from_numpy(standardizer.transform(x))), dim=-1).detach().numpy()
    np.testing.assert_allclose(model.predict_proba(x), expected, atol=1e-6)
    assert model.label_names == ["a", "b", "c"] and model.input_shape == (5, 4)
    assert model.predict(x).shape == (7,)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["lstmkit_version"] and meta["format_version"] == 1


def test_the_folder_holds_no_pickle(saved):
    folder = saved[0]
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "meta.json", "model.safetensors"]
    assert not (folder / "model.safetensors").read_bytes().startswith(b"\x80")  # pickle protocol marker


def test_wrong_inputs_are_refused(saved):
    model = load_model(saved[0])
    with pytest.raises(DataError, match=r"model input: expected shape \(N, 5, 4\), got \(2, 5, 3\)"):
        model.predict(np.zeros((2, 5, 3)))
    with pytest.raises(DataError, match=r"model input: expected at least one sample"):
        model.predict(np.zeros((0, 5, 4)))
    bad = np.zeros((1, 5, 4))
    bad[0, 1, 2] = np.nan
    with pytest.raises(DataError, match=r"NaN"):
        model.predict(bad)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "model.safetensors").unlink(), r"missing model.safetensors"),
        (lambda f: (f / "meta.json").unlink(), r"missing meta.json"),
        (lambda f: (f / "config.toml").unlink(), r"missing config.toml"),
        (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 10), r"model.safetensors is corrupt"),
        (lambda f: (f / "meta.json").write_text("{not json"), r"meta.json is not valid"),
        (lambda f: (f / "config.toml").write_text("[model]\nhidden_size = 'x'\n"), r"config.toml is not valid"),
        (lambda f: (f / "config.toml").write_text("[model]\nhidden_size = 7\nbidirectional = true\n"),
         r"model.safetensors does not match config.toml"),
        (lambda f: (f / "meta.json").write_text('{"format_version": 99}'), r"expected format_version 1"),
    ],
)
def test_damaged_folders_name_the_file(saved, damage, message):
    folder = saved[0]
    damage(folder)
    with pytest.raises(ModelFolderError, match=message):
        load_model(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFolderError, match=r"model folder .*nothing: not found"):
        load_model(tmp_path / "nothing")
