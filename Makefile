# Two commands on a fresh machine: `make demo` and `make test`. Both install into .venv first.
# Everything runs from .venv; the venv re-installs whenever pyproject.toml changes.

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_WAREHOUSE := var/demo.duckdb
DEMO_MODELS := semantic_models/demo

.PHONY: .venv demo test bench

# The venv itself; the stamp file carries pyproject.toml's timestamp so edits to dependencies re-install.
.venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -e '.[test]'
	touch $@

# Regenerated only when the generator changes: the data is deterministic.
$(DEMO_WAREHOUSE): $(STAMP) headless_bi/demo/data.py
	$(BIN)/headless-bi demo-data --warehouse $@

# The service on the demo data (prints its URLs; Ctrl-C stops it): GraphQL and GraphiQL at /graphql,
# the admin UI at / (SQLite metadata in var/), /healthz. HBI_HOST / HBI_PORT move it (default 127.0.0.1:8000).
demo: $(DEMO_WAREHOUSE)
	$(BIN)/headless-bi serve --models $(DEMO_MODELS) --warehouse $(DEMO_WAREHOUSE)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# TPC-H sf1 into bench/.data (own pinned venv, once), then the 22 queries timed and checked.
bench: $(STAMP)
	python3 bench/tpch_sf1.py
	$(BIN)/python bench/run_tpch.py
	$(BIN)/python bench/semantic_bench.py
	$(BIN)/python bench/graphql_bench.py
	$(BIN)/python bench/nlq_bench.py
	$(BIN)/python bench/security_bench.py
