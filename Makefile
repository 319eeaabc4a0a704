# kobo-tip: `make demo` runs the whole pipeline on generated data; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYXFORM3 := .venv-pyxform3

.PHONY: install demo test lint pytest pyxform3 form bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/kobo-tip demo kobo-tip-demo

test: lint pytest pyxform3

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

# The form must also convert without warnings under pyxform 3.0, the version KoboToolbox runs.
pyxform3: $(STAMP)
	test -x $(PYXFORM3)/bin/python || $(PYTHON) -m venv $(PYXFORM3)
	$(PYXFORM3)/bin/python -m pip install -q 'pyxform==3.0.0'
	$(PYXFORM3)/bin/python tests/pyxform3_check.py forms/tip_victims.xlsx

# Regenerate the example form in forms/ from config.example.toml.
form: $(STAMP)
	$(BIN)/kobo-tip form build -c config.example.toml

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_counting.py
	$(BIN)/python benchmarks/bench_report.py
	$(BIN)/python benchmarks/bench_kobo_sync.py 100000 --page-latency 0.2

clean:
	rm -rf $(VENV) $(PYXFORM3) kobo-tip-demo .pytest_cache .hypothesis
