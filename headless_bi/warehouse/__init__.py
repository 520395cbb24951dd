"""Warehouses: where compiled SQL runs. Each returns Arrow so callers never see driver types."""

from headless_bi.warehouse.base import Warehouse
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse

__all__ = ["DuckDBWarehouse", "Warehouse"]
