# kobo-tip: `make demo` runs the whole pipeline on generated data; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYXFORM3 := .venv-pyxform3
WEBFORMS := tests/webforms
WEBFORMS_STAMP := $(WEBFORMS)/node_modules/.installed
PG_BINDIRS ?= /usr/lib/postgresql/*/bin# where Debian puts the PostgreSQL programs

.PHONY: install demo test test-fast lint pytest pyxform3 form bench clean system

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/kobo-tip demo kobo-tip-demo

# What the tests need from the system, each said in one sentence when it is missing.
system:
	@command -v java >/dev/null 2>&1 || { echo "make test needs Java for ODK Validate: apt-get install default-jdk-headless"; exit 1; }
	@command -v javac >/dev/null 2>&1 || { echo "make test needs a JDK (javac) to drive the form in JavaRosa, ODK Collect's engine: apt-get install default-jdk-headless"; exit 1; }
	@command -v node >/dev/null 2>&1 || { echo "make test needs Node.js 20.19.3 or later for the ODK Web Forms check: install it from nodejs.org or your package manager"; exit 1; }
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || { echo "make test needs headless Chromium to lay out the reports (phone, desktop, A4): apt-get install chromium"; exit 1; }
	@command -v initdb >/dev/null 2>&1 || { set -- $(PG_BINDIRS)/initdb; [ -x "$$1" ]; } || { echo "make test needs PostgreSQL (the store tests start a throwaway server): apt-get install postgresql"; exit 1; }
	@node -e 'const [a, b, c] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && (b > 19 || (b === 19 && c >= 3))) ? 0 : 1)' || { echo "make test needs Node.js 20.19.3 or later for the ODK Web Forms check (this is $$(node --version)): upgrade it"; exit 1; }

# The ODK Web Forms engine, pinned by tests/webforms/package-lock.json.
$(WEBFORMS_STAMP): $(WEBFORMS)/package-lock.json | system
	npm ci --prefix $(WEBFORMS) --no-audit --no-fund --loglevel=error
	touch $@

test: lint pytest pyxform3

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

pytest: $(STAMP) $(WEBFORMS_STAMP) | system
	$(BIN)/python -m pytest -q

# The unit tier alone (tests/conftest.py says which file is in which tier): nothing but the venv.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m 'unit and not slow and not sweep'

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
	rm -rf $(VENV) $(PYXFORM3) $(WEBFORMS)/node_modules kobo-tip-demo .pytest_cache .hypothesis
