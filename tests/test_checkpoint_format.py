"""Checkpoints are pickle-free: exact round trips, refused pickles (the attack of issue 17), atomic writes."""

import errno
import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.training.callbacks import Checkpoint, load_checkpoint, save_checkpoint
from lstmkit.training.checkpoints import CheckpointError, dumps, loads
from lstmkit.cli import main
from lstmkit.config import TrainConfig, dump_config, load_config
from lstmkit.artifacts.safe_files import remove_stale_temporaries

DIGITS = Path(__file__).parent.parent / "configs" / "digits.toml"


class _RunsCode:
    """A pickle that runs code when it is loaded: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_torch_save(path, marker):
    torch.save({"model": _RunsCode(marker)}, path)


def _malicious_raw_pickle(path, marker):
    path.write_bytes(pickle.dumps({"model": _RunsCode(marker)}, protocol=2))


def test_a_trainer_like_payload_round_trips_bit_identically():
    random.seed(3)
    np.random.seed(4)
    model = torch.nn.LSTM(3, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 5, 3))[0].sum().backward()
    optimizer.step()
    payload = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": None, "epoch": 2,
        "lr": 1e-3, "seconds": float("nan"), "sums": {"loss": -0.0}, "big": 10**40, "betas": (0.9, 0.999),
        "history": [{"epoch": 1, "train_loss": float("inf"), "name": "x"}], "flag": True,
        "order": torch.randperm(7), "shuffle_rng": torch.Generator().manual_seed(1).get_state(),
        "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
        "arrays": [np.arange(6, dtype=np.uint16).reshape(2, 3), np.float64(2.5), np.zeros((0, 2), np.complex64),
                   torch.tensor([1.5], dtype=torch.bfloat16)],
    }
    back = loads(dumps(payload))

    assert back["python_rng"] == payload["python_rng"] and isinstance(back["python_rng"], tuple)
    assert back["numpy_rng"][0] == "MT19937" and back["numpy_rng"][1].dtype == np.uint32
    np.testing.assert_array_equal(back["numpy_rng"][1], payload["numpy_rng"][1])
    assert back["numpy_rng"][2:] == payload["numpy_rng"][2:]
    np.random.set_state(back["numpy_rng"])
    random.setstate(back["python_rng"])
    torch.set_rng_state(back["torch_rng"])
    assert list(back["optimizer"]["state"]) == [0, 1, 2, 3]  # int keys stay ints
    optimizer.load_state_dict(back["optimizer"])
    model.load_state_dict(back["model"])
    for key, value in payload["model"].items():
        assert torch.equal(back["model"][key], value), key
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg_sq"], payload["optimizer"]["state"][0]["exp_avg_sq"])
    assert back["betas"] == (0.9, 0.999) and isinstance(back["betas"], tuple)
    assert type(back["epoch"]) is int and type(back["lr"]) is float and back["big"] == 10**40
    assert np.isnan(back["seconds"]) and str(back["sums"]["loss"]) == "-0.0"
    assert back["history"] == [{"epoch": 1, "train_loss": float("inf"), "name": "x"}]
    assert back["flag"] is True and back["scheduler"] is None
    assert torch.equal(back["order"], payload["order"]) and torch.equal(back["shuffle_rng"], payload["shuffle_rng"])
    uint16, scalar, empty, bf16 = back["arrays"]
    assert uint16.dtype == np.uint16 and uint16.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert type(scalar) is np.float64 and scalar == 2.5
    assert empty.dtype == np.complex64 and empty.shape == (0, 2)
    assert bf16.dtype == torch.bfloat16 and bf16.item() == 1.5


def test_a_checkpoint_whose_header_length_starts_like_pickle_still_loads():
    """One header size in 256 puts 0x80 (pickle's first opcode) in the file's first byte: still a checkpoint."""
    for pad in range(600):
        payload = {"epoch": 3, "weights": torch.arange(4.0), "note": "x" * pad}
        data = dumps(payload)
        if data[:1] == b"\x80":
            break
    assert data[:1] == b"\x80"
    restored = loads(data)
    assert restored["note"] == payload["note"] and torch.equal(restored["weights"], payload["weights"])


def test_values_that_cannot_be_stored_without_pickle_are_refused_by_name():
    with pytest.raises(CheckpointError, match=r"checkpoint payload payload\['f'\]: expected tensors.*got function"):
        dumps({"f": lambda: 0})
    with pytest.raises(CheckpointError, match="expected a numeric NumPy array, got dtype object"):
        dumps({"a": np.array([object()])})


@pytest.mark.parametrize("write", [_malicious_torch_save, _malicious_raw_pickle])
def test_a_pickle_checkpoint_is_refused_without_running_it(tmp_path, write):
    marker = tmp_path / "pwned"
    path = tmp_path / "last.pt"
    write(path, marker)
    with pytest.raises(CheckpointError, match=r"expected an lstmkit checkpoint \(safetensors \+ JSON\), got a pickle "
                                              r"\(torch.save\) file; it is refused because unpickling can run any code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_resume_from_a_shared_run_with_a_malicious_checkpoint_runs_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    dump_config(load_config(None, ["train.epochs=1", "train.progress=false"]), run / "config.toml")
    marker = tmp_path / "pwned"
    _malicious_torch_save(run / "checkpoints" / "last.pt", marker)

    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "got a pickle (torch.save) file; it is refused" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize("data, match", [
    (b"", "expected a safetensors file, got 0 bytes"),
    (b"\xff" * 8 + b"{}", "expected a safetensors header of at most 2 bytes"),
    (len(b'{"__metadata__":{}}').to_bytes(8, "little") + b'{"__metadata__":{}}', "header, got one that is not valid"),
])
def test_damaged_checkpoints_are_one_clear_error(data, match):
    with pytest.raises(CheckpointError, match=match):
        loads(data, "x.pt")


def test_a_deeply_nested_skeleton_is_refused_not_a_recursion_error():
    text = '{"format":"lstmkit-checkpoint-1","payload":' + '{"list":[' * 5000 + "]}" * 5000 + "}"
    header = ('{"__metadata__":{"lstmkit_checkpoint":' + __import__("json").dumps(text) + "}}").encode()
    with pytest.raises(CheckpointError, match="nested at most 64 deep"):
        loads(len(header).to_bytes(8, "little") + header)


def test_a_failed_checkpoint_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CheckpointError, match=rf"checkpoint {path}: cannot write it \(No space left on device\); "
                                              "the previous checkpoint, if any, is kept"):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_temporaries_of_killed_writes_are_removed_when_training_starts(tmp_path):
    stale = tmp_path / f".last.pt.tmp-{2**22 + 12345}"  # above any PID this machine hands out
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / f".last.pt.tmp-{os.getppid()}"  # a live writer's: left alone
    live.write_bytes(b"being written")

    class _Trainer:
        rank = 0
        config = TrainConfig()

    Checkpoint(tmp_path).on_fit_start(_Trainer())
    assert not stale.exists() and live.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_torch_save_zip_is_recognised_by_its_magic(tmp_path):
    torch.save({"x": 1}, tmp_path / "plain.pt")
    assert zipfile.is_zipfile(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="got a pickle"):
        load_checkpoint(tmp_path / "plain.pt")


@pytest.mark.slow
def test_a_full_disk_during_training_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    """Issue 17 item 8: ENOSPC from write_synced_temp was a traceback."""
    run = tmp_path / "run"
    common = ["--set", "train.progress=false", "--set", "model.hidden_size=8"]
    real_fsync, writes = os.fsync, []

    def fsync_until_full(fd):
        writes.append(fd)
        if len(writes) > 3:  # config.toml, best.pt and last.pt of epoch 1 went through
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_until_full)
    status = main(["train", str(DIGITS), "--out", str(run), "--set", "train.epochs=3", *common])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert status == 2, err
    line = [x for x in err.strip().splitlines() if x.startswith("lstmkit: error")]
    assert line and "cannot write it (No space left on device); the previous checkpoint, if any, is kept" in line[0]
    assert "Traceback" not in err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] in (1, 2)
    assert not list((run / "checkpoints").glob(".*.tmp-*"))


def test_a_fifo_in_place_of_a_checkpoint_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=r"last.pt: expected a regular file, got a special file"):
        load_checkpoint(tmp_path / "last.pt")
