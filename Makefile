# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   - set up, then load a seeded local Lexful server into DuckDB
#   make test   - set up, then run the whole test suite
# Next steps on the demo data: make dbt (dbt build), make notebooks (Jupyter Lab)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint format bench bench-sandbox setup dbt notebooks

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,analytics]'
	touch $@

demo: setup
	$(BIN)/python pipelines/lexful_pipeline.py --demo --dbt-project dbt

test: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

dbt: setup
	@test -d dbt/models/generated || { echo "run make demo first: it loads the demo and writes dbt/models/generated/"; exit 1; }
	cd dbt && ../$(BIN)/dbt build

notebooks: setup
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/load_speed.py

bench-sandbox: setup
	$(BIN)/python benchmarks/sandbox_throughput.py
