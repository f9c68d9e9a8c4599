# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-long test-unit bench bench-quick soak chaos lint typecheck services clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

demo: $(STAMP)
	@scripts/demo.sh

# only the tests need PostgreSQL and Redis binaries to fall back on; the demo needs no server
# everything but the tests marked `long` (minutes of real processes each): under 15 minutes
test: $(STAMP)
	@scripts/bootstrap.sh
	$(BIN)/ruff check workflow_engine workers tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -m "not long"

# the long tests: kills during big runs, a fresh install, whole deployments under a supervisor
test-long: $(STAMP)
	@scripts/bootstrap.sh
	$(BIN)/python -m pytest -m long

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m unit

# DRIVER=psycopg2 runs the engine on psycopg2 instead of psycopg 3 (what postgresql:// means)
DRIVER ?= psycopg

bench: $(STAMP)
	$(BIN)/python -m bench --driver $(DRIVER)

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick --driver $(DRIVER)

# S4: 100,000 executions purged down to 10,000 while W2 runs; listings' latency and plans
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# every fault of the chaos matrix against servers and processes of its own (as root: network
# namespaces); writes docs/chaos.json and docs/CHAOS.md
chaos: $(STAMP)
	@scripts/bootstrap.sh
	$(BIN)/python -m tests.chaos.matrix

lint: $(STAMP)
	$(BIN)/ruff check workflow_engine workers tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) wfe.db .wfe.db.broker *.egg-info
