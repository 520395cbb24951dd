"""Demo retail warehouse: deterministic data for demos, tests and the forecasting/anomaly features."""

from headless_bi.demo.data import HOLIDAYS, PLANTED_ANOMALIES, generate_demo_data

__all__ = ["HOLIDAYS", "PLANTED_ANOMALIES", "generate_demo_data"]
