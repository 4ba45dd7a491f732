import json
import pickle

import numpy as np
import pytest
import torch

from lstmkit.config import Config, ModelConfig
from lstmkit.data import Standardizer
from lstmkit.errors import DataError, ModelFolderError
from lstmkit.artifacts.model_folder import load_model, save_model, write_manifest
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
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "manifest.json", "meta.json",
                                                        "model.safetensors"]
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
    """Damage that the manifest vouches for (as if saved so) still meets a clear error from the parsers."""
    folder = saved[0]
    damage(folder)
    if "missing" not in message:
        write_manifest(folder)
    with pytest.raises(ModelFolderError, match=message):
        load_model(folder)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-7])


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.safetensors", "config.toml", "meta.json"])
@pytest.mark.parametrize("tamper", [_truncate, _flip_one_byte])
def test_a_tampered_file_is_refused_naming_it(saved, name, tamper):
    folder = saved[0]
    tamper(folder / name)
    with pytest.raises(ModelFolderError, match=rf"model folder .*: {name} does not match manifest.json \(SHA-256 "
                                               r"[0-9a-f]{12}\.\.\., expected [0-9a-f]{12}\.\.\.\): it was modified, "
                                               r"truncated or replaced after saving"):
        load_model(folder)


def test_a_file_swapped_from_another_model_is_refused(saved, tmp_path):
    folder, module, standardizer, x = saved
    config = Config(model=ModelConfig(hidden_size=6, bidirectional=True))
    other = save_model(tmp_path / "other", build_model(config.model, SPEC), config, SPEC, ["a", "b", "c"], standardizer)
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())  # loads fine otherwise
    with pytest.raises(ModelFolderError, match=r"model.safetensors does not match manifest.json"):
        load_model(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match=r"missing model.safetensors"):
        load_model(folder)


def test_a_folder_without_a_manifest_is_refused_with_a_way_out(saved):
    folder = saved[0]
    (folder / "manifest.json").unlink()
    with pytest.raises(ModelFolderError, match=r"missing manifest.json .*a folder saved by an older lstmkit has "
                                               r"none: if you trust it, add one with .*write_manifest"):
        load_model(folder)
    write_manifest(folder)  # the way out the message gives
    assert load_model(folder).label_names == ["a", "b", "c"]


@pytest.mark.parametrize("manifest, message", [
    ("{not json", r"manifest.json is not valid"),
    ('{"format": "something else", "files": {}}', r'manifest.json is not valid \(expected a JSON object with "format"'),
    ('{"format": "lstmkit-manifest-1", "files": {"../outside.safetensors": "%s"}}' % ("0" * 64),
     r"manifest.json lists '../outside.safetensors'; expected only model.safetensors, config.toml, meta.json"),
    ('{"format": "lstmkit-manifest-1", "files": {"/etc/passwd": "%s"}}' % ("0" * 64), r"manifest.json lists '/etc/passwd'"),
    ('{"format": "lstmkit-manifest-1", "files": {"meta.json": "abc"}}', r"manifest.json: meta.json: expected a SHA-256"),
    ('{"format": "lstmkit-manifest-1", "files": {}}', r"manifest.json does not list model.safetensors"),
])
def test_a_malicious_or_broken_manifest_is_refused(saved, manifest, message):
    folder = saved[0]
    (folder / "manifest.json").write_text(manifest)
    with pytest.raises(ModelFolderError, match=message):
        load_model(folder)


def test_names_in_meta_never_choose_a_file(saved, tmp_path):
    """meta.json naming other files (vouched for by the manifest) changes nothing that loading reads."""
    folder = saved[0]
    (tmp_path / "outside.safetensors").write_bytes(b"\x80\x04 pickle that must never be read")
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(weights="../outside.safetensors", step_file="../../outside.onnx", data_name="../../etc")
    (folder / "meta.json").write_text(json.dumps(meta))
    write_manifest(folder)
    model = load_model(folder)
    assert model.label_names == ["a", "b", "c"]


def test_a_link_to_outside_the_folder_is_refused(saved, tmp_path):
    folder = saved[0]
    target = tmp_path / "elsewhere.toml"
    target.write_bytes((folder / "config.toml").read_bytes())  # same bytes: the hash alone would pass
    (folder / "config.toml").unlink()
    (folder / "config.toml").symlink_to(target)
    with pytest.raises(ModelFolderError, match=r"config.toml is a link to outside the folder"):
        load_model(folder)


def test_loading_never_unpickles(saved, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(np, "load", refuse)
    assert load_model(saved[0]).predict(saved[3]).shape == (7,)


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFolderError, match=r"model folder .*nothing: not found"):
        load_model(tmp_path / "nothing")


# ---- issue 17 item 7: tampered folders (vouched for by a rewritten manifest) crash, hang or eat memory ----

NESTED = "[" * 100_000 + "]" * 100_000


def _edit_meta(folder, **changes):
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(changes)
    (folder / "meta.json").write_text(json.dumps(meta))
    write_manifest(folder)


def test_a_deeply_nested_manifest_is_refused_before_parsing(saved):
    folder = saved[0]
    (folder / "manifest.json").write_text("[" * 30_000 + "]" * 30_000)  # within the size bound
    with pytest.raises(ModelFolderError, match=r"manifest.json is not valid \(expected brackets nested at most 32 deep"):
        load_model(folder)


def test_deep_nesting_hidden_from_the_pre_scan_is_still_refused(saved):
    """A TOML literal string holding a double quote blinds the bracket pre-scan; the parser's RecursionError is
    still turned into the folder's error."""
    folder = saved[0]
    (folder / "config.toml").write_text("a = '\"'\nx = " + NESTED + "\n")
    write_manifest(folder)
    with pytest.raises(ModelFolderError, match=r"config.toml is not valid"):
        load_model(folder)


@pytest.mark.parametrize("name, text", [
    ("meta.json", '{"format_version": 1, "x": ' + NESTED + "}"),
    ("config.toml", "x = " + NESTED + "\n"),
])
def test_deep_nesting_in_meta_or_config_is_refused(saved, name, text):
    folder = saved[0]
    (folder / name).write_text(text)
    write_manifest(folder)
    with pytest.raises(ModelFolderError, match=rf"{name} is not valid \(expected brackets nested at most 32 deep"):
        load_model(folder)


@pytest.mark.parametrize("table, message", [
    ("[model]\nhidden_size = 1000000000\n", r"config.toml is not valid \(config \[model\] hidden_size: expected an "
                                            r"integer <= 65536, got 1000000000\)"),
    ("[model]\nnum_layers = 1000000\n", r"config \[model\] num_layers: expected an integer <= 256, got 1000000"),
    ("[model]\nhidden_size = 65536\nnum_layers = 256\n",
     r"config.toml describes a network of \d+ bytes of weights; expected at most 17179869184"),
])
def test_a_config_claiming_a_huge_network_is_refused_before_allocating(saved, table, message):
    folder = saved[0]
    (folder / "config.toml").write_text(table)
    write_manifest(folder)
    with pytest.raises(ModelFolderError, match=message):
        load_model(folder)


def test_a_weights_file_larger_than_its_config_implies_is_not_read(saved, monkeypatch):
    folder = saved[0]
    with open(folder / "model.safetensors", "ab") as fh:
        fh.truncate((folder / "model.safetensors").stat().st_size + 2 * 2**20)  # sparse: costs no disk
    write_manifest(folder)
    reads = []
    real_read = __import__("os").read
    monkeypatch.setattr("lstmkit.artifacts.model_folder.os.read", lambda fd, n: reads.append(real_read(fd, n)) or reads[-1])
    with pytest.raises(ModelFolderError, match=r"model.safetensors: expected at most \d+ bytes, got \d+"):
        load_model(folder)
    assert sum(map(len, reads)) < 2**20  # only the small files were read


@pytest.mark.parametrize("changes, message", [
    ({"label_names": ["a", "b"]}, r"meta.json label_names: expected 3 names \(one per output\), got 2"),
    ({"label_names": 5}, r"meta.json label_names: expected a list of strings, got '5'"),
    ({"label_names": ["a", 1, "c"]}, r"label_names: expected a list of strings"),
    ({"num_outputs": 10**12}, r"meta.json num_outputs: expected an integer in 1..1048576, got '1000000000000'"),
    ({"input_size": "4"}, r"meta.json input_size: expected an integer in 1..1048576, got '4'"),
    ({"image_shape": [1, -3]}, r"meta.json image_shape: expected null or \[height, width\]"),
])
def test_meta_values_are_checked_for_type_and_bounds(saved, changes, message):
    folder = saved[0]
    _edit_meta(folder, **changes)
    with pytest.raises(ModelFolderError, match=message):
        load_model(folder)


def test_a_fifo_in_place_of_a_file_is_refused_without_blocking(saved):
    folder = saved[0]
    (folder / "model.safetensors").unlink()
    __import__("os").mkfifo(folder / "model.safetensors")
    with pytest.raises(ModelFolderError, match=r"model.safetensors: expected a regular file, got a FIFO"):
        load_model(folder)  # before the fix: blocked forever in open()
    (folder / "meta.json").unlink()
    (folder / "meta.json").mkdir()
    with pytest.raises(ModelFolderError, match=r"meta.json: expected a regular file, got a folder"):
        load_model(folder)


def test_an_oversized_manifest_is_refused_by_size(saved):
    folder = saved[0]
    (folder / "manifest.json").write_text(" " * (65 * 2**10))
    with pytest.raises(ModelFolderError, match=r"manifest.json: expected at most 65536 bytes, got 66560"):
        load_model(folder)


def test_saving_removes_the_temporaries_of_an_earlier_killed_save(saved):
    """Issue 17 item 10: killed or failed writes left .NAME.tmp-PID files behind."""
    folder, module, standardizer, x = saved
    stale = folder / f".model.safetensors.tmp-{2**22 + 7}"  # a PID above any this machine hands out
    stale.write_bytes(b"half the weights")
    save_model(folder, module, Config(model=ModelConfig(hidden_size=6, bidirectional=True)), SPEC, ["a", "b", "c"],
               standardizer)
    assert not stale.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "manifest.json", "meta.json",
                                                        "model.safetensors"]
