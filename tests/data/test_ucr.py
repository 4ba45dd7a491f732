"""UCR/UEA sources: the aeon-bundled archives, the strict .ts and long-CSV readers, the user source."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from lstmkit.config import DataConfig, ModelConfig
from lstmkit.data import load_source
from lstmkit.data.tsfile import read_long_csv, read_ts
from lstmkit.data.ucr import BUNDLED, aeon_data_dir, ucr_split_paths
from lstmkit.errors import DataError
from lstmkit.models import InputSpec, build_model

needs_aeon = pytest.mark.skipif(aeon_data_dir() is None, reason="aeon (the [aeon] extra) is not installed")

GOOD_TS = """# a comment
@problemName Tiny
@timeStamps false
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
7,8:9,10:down
"""


@needs_aeon
@pytest.mark.parametrize("name, train_shape, test_n, labels, variable", [
    ("japanese-vowels", (270, 29, 12), 370, [str(i) for i in range(1, 10)], True),
    ("basic-motions", (40, 100, 6), 40, ["Standing", "Running", "Walking", "Badminton"], False),
    ("gunpoint", (50, 150, 1), 150, ["1", "2"], False),
    ("arrowhead", (36, 251, 1), 175, ["0", "1", "2"], False),
    ("italy-power-demand", (67, 24, 1), 1029, ["1", "2"], False),
])
def test_each_bundled_archive_loads_offline(name, train_shape, test_n, labels, variable):
    source = load_source(name)
    assert source.train.x.shape == train_shape and len(source.test) == test_n
    assert source.label_names == labels
    assert set(np.unique(source.train.y)) == set(range(len(labels)))
    assert (source.train.lengths is not None) == variable
    if variable:  # JapaneseVowels: 7..29 frames, zero after each utterance's end
        lengths = np.concatenate([source.train.lengths, source.test.lengths])
        assert lengths.min() == 7 and lengths.max() == 29
        assert not source.train.x[~source.train.step_mask()].any()


def test_bundled_names_are_registered():
    from lstmkit.data import available_sources

    assert set(BUNDLED) | {"ucr"} <= set(available_sources())


def test_a_bundled_archive_reads_from_data_dir(tmp_path):
    folder = tmp_path / "gp"
    folder.mkdir()
    for split in ("TRAIN", "TEST"):
        (folder / f"GunPoint_{split}.ts").write_text(GOOD_TS.replace("@dimensions 2", "@dimensions 2"))
    source = load_source("gunpoint", data_dir=folder)
    assert source.label_names == ["up", "down"] and source.train.x.shape == (2, 3, 2)
    with pytest.raises(DataError, match=r"gunpoint: expected GunPoint_TRAIN.ts in .*, got no such file"):
        load_source("gunpoint", data_dir=tmp_path)


def test_read_ts_pads_multivariate_series_of_different_lengths(tmp_path):
    path = tmp_path / "tiny.ts"
    path.write_text(GOOD_TS)
    f = read_ts(path)
    assert f.x.shape == (2, 3, 2) and f.lengths.tolist() == [3, 2]
    np.testing.assert_array_equal(f.x[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(f.x[1], [[7, 9], [8, 10], [0, 0]])
    assert f.labels == ["up", "down"] and f.class_labels == ["up", "down"]


@pytest.mark.parametrize("body, message", [
    ("1,2,3:4,5,6:up\n1,x,3:4,5,6:up\n", r"bad\.ts line 10 dimension 1: expected a number, got 'x'"),
    ("1,2,3:4,5,6:up\n1,?,3:4,5,6:up\n", r"bad\.ts line 10 dimension 1: missing value '\?'"),
    ("1,2,3:4,5:up\n", r"bad\.ts line 9: expected every dimension to have 3 values \(as dimension 1\), got 2"),
    ("1,2,3:up\n", r"bad\.ts line 9: expected 2 dimensions separated by ':', got 1"),
    ("1,2,3:4,5,6:sideways\n", r"bad\.ts line 9: class label 'sideways' is not declared by @classLabel \(up down\)"),
    ("1,2,3\n", r"bad\.ts line 9: expected dimensions separated by ':' and a class label last"),
    ("", r"bad\.ts: expected at least one series after @data, got none"),
    # Found by tests/fuzz/test_fuzz_readers.py: a float32 overflow warning, then inf in the data
    ("1,2,1e308:4,5,6:up\n", r"bad\.ts line 9 dimension 1: expected a finite number within float32 \(±3\.4e38\), "
                            r"got '1e308'"),
])
def test_read_ts_names_the_file_and_line_of_each_problem(tmp_path, body, message):
    path = tmp_path / "bad.ts"
    path.write_text(GOOD_TS.split("@data\n")[0] + "@data\n" + body)
    with pytest.raises(DataError, match=message):
        read_ts(path)


def test_read_ts_refuses_time_stamps_and_a_missing_data_section(tmp_path):
    path = tmp_path / "bad.ts"
    path.write_text("@problemName X\n@timeStamps true\n@data\n(0,1),(1,2):a\n")
    with pytest.raises(DataError, match=r"bad\.ts: @timeStamps true: time-stamped series are not supported"):
        read_ts(path)
    path.write_text("@problemName X\n1,2:a\n")
    with pytest.raises(DataError, match=r"bad\.ts line 2: expected a @header or @data before the series"):
        read_ts(path)
    with pytest.raises(DataError, match=r"missing\.ts: no such file"):
        read_ts(tmp_path / "missing.ts")


@pytest.mark.parametrize("header, message", [
    ("@timeStamps\n", r"bad\.ts: @timestamps: expected a value after it, got none"),
    ("@dimensions\n", r"bad\.ts: @dimensions: expected a value after it, got none"),
    ("@dimensions two\n", r"bad\.ts: @dimensions: expected a positive integer, got 'two'"),
])
def test_read_ts_headers_without_a_value_are_clear_errors(tmp_path, header, message):
    """Found by tests/fuzz/test_fuzz_readers.py: an IndexError and a ValueError."""
    path = tmp_path / "bad.ts"
    path.write_text("@problemName X\n" + header + "@data\n1,2:a\n")
    with pytest.raises(DataError, match=message):
        read_ts(path)


LONG_CSV = """id,time,x,y,label
a,1,0.3,1.1,walk
a,0,0.1,1.2,walk
b,0,0.5,0.9,run
b,1,0.6,0.8,run
b,2,0.7,0.7,run
"""


def test_read_long_csv_sorts_steps_by_time_and_pads(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text(LONG_CSV)
    f = read_long_csv(path)
    assert f.x.shape == (2, 3, 2) and f.lengths.tolist() == [2, 3]
    np.testing.assert_allclose(f.x[0], [[0.1, 1.2], [0.3, 1.1], [0, 0]])
    assert f.labels == ["walk", "run"] and f.class_labels == ["run", "walk"]


@pytest.mark.parametrize("text, message", [
    ("id,time,x\na,0,1\n", r"long\.csv line 1: expected columns id, time and label in the header, missing label"),
    (LONG_CSV + "b,3,0.1,0.2,walk\n", r"long\.csv line 7: series 'b' has label 'walk', but 'run' on line 4"),
    (LONG_CSV + "b,2,0.1,0.2,run\n", r"long\.csv line 7: series 'b' repeats time 2"),
    (LONG_CSV + "c,0,oops,0.2,run\n", r"long\.csv line 7 column x: expected a number, got 'oops'"),
    (LONG_CSV + "c,0,0.2\n", r"long\.csv line 7: expected 5 fields \(as the header\), got 3"),
])
def test_read_long_csv_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "long.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_long_csv(path)


def test_the_ucr_source_reads_a_split_pattern_or_a_train_file(tmp_path):
    for split in ("TRAIN", "TEST"):
        (tmp_path / f"Tiny_{split}.ts").write_text(GOOD_TS)
        (tmp_path / f"Walk_{split}.csv").write_text(LONG_CSV)
    for path in (str(tmp_path / "Tiny_{split}.ts"), str(tmp_path / "Tiny_TRAIN.ts")):
        source = load_source("ucr", config=DataConfig(name="ucr", path=path))
        assert source.train.x.shape == (2, 3, 2) and source.train.lengths.tolist() == [3, 2]
        assert source.label_names == ["up", "down"] and source.train.y.tolist() == [0, 1]
    source = load_source("ucr", data_dir=tmp_path, config=DataConfig(name="ucr", path="Walk_{split}.csv"))
    assert source.label_names == ["run", "walk"] and source.test.y.tolist() == [1, 0]


def test_the_ucr_source_explains_what_path_it_needs(tmp_path):
    with pytest.raises(DataError, match=r"ucr: expected \[data\] path naming the files"):
        load_source("ucr", config=DataConfig(name="ucr"))
    with pytest.raises(DataError, match=r"expected a file name with \{split\}"):
        ucr_split_paths("data/wafer.ts")
    with pytest.raises(DataError, match=r"expected a \.ts or \.csv file"):
        ucr_split_paths("data/wafer_TRAIN.arff")
    (tmp_path / "Tiny_TRAIN.ts").write_text(GOOD_TS)
    with pytest.raises(DataError, match=r"Tiny_TEST\.ts: no such file"):
        load_source("ucr", config=DataConfig(name="ucr", path=str(tmp_path / "Tiny_TRAIN.ts")))


@pytest.mark.parametrize("task, conv", [("classifier", "none"), ("classifier", "conv1d"), ("rnn-classifier", "none")])
def test_padding_never_changes_a_prediction(task, conv):
    """A padded batch answers each sequence as the sequence alone does (JapaneseVowels-like shapes)."""
    torch.manual_seed(0)
    config = ModelConfig(task=task, hidden_size=8, bidirectional=True, readout="mean", conv=conv,
                         conv_channels=[4], pool=2)
    model = build_model(config, InputSpec(input_size=12, num_outputs=9)).eval()
    lengths = torch.tensor([29, 7, 18, 12])
    x = torch.randn(4, 29, 12)
    x[torch.arange(29)[None, :] >= lengths[:, None]] = 123.0  # garbage in the padding
    with torch.no_grad():
        batch = model(x, lengths=lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model(x[i: i + 1, :n])
            torch.testing.assert_close(batch[i: i + 1], alone, rtol=1e-5, atol=1e-5)
