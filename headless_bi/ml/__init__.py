"""Forecasting, anomaly detection and insights over semantic queries (not built yet)."""
