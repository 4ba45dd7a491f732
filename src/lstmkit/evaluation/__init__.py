"""Metrics: classification reports (accuracy, macro precision/recall/F1, confusion matrix) and forecast
metrics (MAE, RMSE, sMAPE, MASE and the naive baselines). Each task's ``evaluate`` uses them."""
