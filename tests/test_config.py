from pathlib import Path

import pytest

from lstmkit.config import Config, config_to_dict, dump_config, load_config
from lstmkit.errors import ConfigError

CONFIGS = Path(__file__).parent.parent / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.data.name == "digits" and cfg.model.hidden_size == 128


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_recipes_load(path):
    from lstmkit.config import read_toml
    from lstmkit.tasks import load_recipe

    # every recipe loads strictly through the task its [model] task names (its own schema)
    task, config = load_recipe(path)
    named = read_toml(path).get("model", {}).get("task")
    assert config.model.task == (named or "classifier")
    if task.name == "sequence":
        assert config.model.hidden_size > 0


def test_file_values_and_typed_overrides(tmp_path):
    path = write(tmp_path, '[data]\nname = "mnist"\n[train]\nlr = 0.01\nepochs = 3\n')
    cfg = load_config(path, ["train.lr=3e-3", "train.epochs=1", "train.batch_size=7", "train.seed=5",
                             "data.name=fashion-mnist", "model.hidden_size=16", "model.conv_channels=[4, 8]",
                             "model.bidirectional=true", 'data.data_dir="/tmp/x y"'])
    assert cfg.train.lr == 3e-3 and isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 1 and cfg.train.batch_size == 7 and cfg.train.seed == 5
    assert cfg.data.name == "fashion-mnist" and cfg.data.data_dir == "/tmp/x y"
    assert cfg.model.hidden_size == 16 and cfg.model.conv_channels == [4, 8] and cfg.model.bidirectional is True


def test_an_integer_is_accepted_for_a_float():
    cfg = load_config(None, ["train.lr=1"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


def test_round_trip_through_toml(tmp_path):
    cfg = load_config(None, ["train.epochs=2", "model.conv=conv1d", "data.data_dir=somewhere"])
    dump_config(cfg, tmp_path / "out.toml")
    assert load_config(tmp_path / "out.toml") == cfg
    assert "data_dir" not in config_to_dict(Config())["data"]  # None is left out, as TOML has no null


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=fast", r'config \[train\] lr: expected a positive float, got "fast"'),
        ("train.lr=-1", r"config \[train\] lr: expected a positive float, got -1.0"),
        ("train.epochs=1.5", r"config \[train\] epochs: expected a positive integer, got 1.5"),
        ("train.epochs=0", r"config \[train\] epochs: expected a positive integer, got 0"),
        ("train.patience=-2", r"config \[train\] patience: expected a non-negative integer, got -2"),
        ("data.val_fraction=0.95", r"config \[data\] val_fraction: expected a float <= 0.9, got 0.95"),
        ("train.optimizer=rmsprop", r'config \[train\] optimizer: expected one of "adam", "adamw", "sgd", got "rmsprop"'),
        ("model.bidirectional=yes", r'config \[model\] bidirectional: expected a boolean, got "yes"'),
        ("model.conv_channels=[4, \"x\"]", r'config \[model\] conv_channels\[1\]: expected an integer, got "x"'),
        ("train.lr=nan", r"config \[train\] lr: expected a positive float, got nan"),
        ("train.learning_rate=1", r"config: unknown key 'train.learning_rate'; known keys in train: epochs"),
        ("optim.lr=1", r"config: unknown key 'optim'; known keys: data, model, train"),
        ("train=3", r"config train: expected a table, got 3"),
        ("train.lr", r"override 'train.lr': expected KEY=VALUE"),
        ("train..lr=1", r"override 'train..lr=1': expected a dotted key"),
        ("train.lr.x=1", r"override 'train.lr.x=1': 'lr' is not a table"),
    ],
)
def test_bad_values_name_the_key_and_the_expectation(tmp_path, override, message):
    path = write(tmp_path, "[train]\nlr = 0.5\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path, [override])


def test_unknown_key_in_file(tmp_path):
    path = write(tmp_path, "[model]\nhidden = 3\n")
    with pytest.raises(ConfigError, match=r"config: unknown key 'model.hidden'; known keys in model: task, hidden_size"):
        load_config(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*nope.toml: not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"config file .*run.toml: not valid TOML"):
        load_config(write(tmp_path, "[train\nlr = 1"))
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe\x00[")
    with pytest.raises(ConfigError, match=r"config file .*bin.toml: cannot be read"):
        load_config(bad)


# Found by fuzzing (tests/fuzz): each of these escaped as another exception or a multi-line message.


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=1" + "0" * 400, r"config \[train\] lr: expected a positive float, got 10{400}$"),  # OverflowError
        ("train.epochs=9223372036854775808", r"config \[train\] epochs: expected a positive integer, got 9223372036854775808"),
        ("train.epochs=1e300", r"config \[train\] epochs: expected a positive integer, got 1e\+300"),
        ("train.seed=4294967296", r"config \[train\] seed: expected an integer <= 4294967295, got 4294967296"),
        ("train.num_threads=100000", r"config \[train\] num_threads: expected an integer <= 1024, got 100000"),
        ("train.lr=" + "[" * 5000 + "]" * 5000, r"override 'train.lr': expected a TOML value, got one nested too deeply"),
    ],
)
def test_fuzz_found_override_values_outside_what_the_run_can_use(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_fuzz_found_huge_integers_and_deep_nesting_in_a_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config \[train\] lr: expected a positive float, got 1(0{30})$"):
        load_config(write(tmp_path, "[train]\nlr = 1" + "0" * 30 + "\n"))  # was OverflowError
    with pytest.raises(ConfigError, match=r"config file .*run.toml: not valid TOML \(arrays or tables nested too deeply\)"):
        load_config(write(tmp_path, "[train]\nlr = " + "[{a=" * 2000 + "1" + "}]" * 2000 + "\n"))  # was RecursionError


def test_fuzz_found_a_string_value_with_a_newline_is_escaped_in_the_message():
    with pytest.raises(ConfigError) as caught:
        load_config(None, ['train.optimizer="a\\nb\\u2028c"'])
    assert str(caught.value) == r'config [train] optimizer: expected one of "adam", "adamw", "sgd", got "a\nb\u2028c"'


def test_learning_rates_beyond_float32_steps_are_refused():
    """Issue 17 item 8: lr = 1e308 trained for 16 s, then an overflow traceback from the optimiser."""
    with pytest.raises(ConfigError, match=r"config \[train\] lr: expected a float <= 1000.0, got 1e\+308"):
        load_config(None, ["train.lr=1e308"])
