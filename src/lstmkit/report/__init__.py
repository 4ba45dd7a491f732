"""The HTML run report and what it draws: curves, evaluation, forecasts, gate and cell-state views.

- ``run_report``: ``write_report(run)`` and ``inspect_input(model, file)``, the pages;
- ``gate_views``: what the LSTM's gates and cells do on real inputs (recording, saturation, unit ranking);
- ``plots``, ``seq_plots``: the figures (matplotlib).
"""

from lstmkit.report.run_report import (highlight_text, inspect_input, parse_indices, read_forecast_csv,
                                       read_metrics_csv, write_report)

__all__ = ["write_report", "inspect_input", "highlight_text", "parse_indices", "read_metrics_csv", "read_forecast_csv"]
