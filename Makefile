# Two entry points (see README): `make run` and `make test`. Both create .venv from scratch.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CB_STORAGE_LOCAL_ROOT_PATH ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup run test test-fast lint bench bench-full bench-scale bench-cold bench-scale-orchestration bench-peer bench-latency clean demo
.PHONY: setup-deploy-tests screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,query,polars]"

node_modules/.bin/azurite-blob: package.json
	@command -v npm >/dev/null || { echo "npm is required for the Azurite emulator used by the Azure tests: install Node.js 20+ and npm (e.g. apt-get install nodejs npm)"; exit 1; }
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

## make run: set up, then start the product with Dagster's `dg dev` on 127.0.0.1:3000 (local disk under
## ./data, synthetic market data). `dg` reads the project from [tool.dg] in pyproject.toml; VIRTUAL_ENV
## tells it the project's .venv is the active environment.
run: setup
	mkdir -p "$(DAGSTER_HOME)" "$(CB_STORAGE_LOCAL_ROOT_PATH)"
	cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	VIRTUAL_ENV="$(CURDIR)/$(VENV)" $(BIN)/dg dev -h 127.0.0.1 -p 3000

## make demo: save and read a range with the storage manager (no Dagster)
demo: setup
	$(BIN)/python -m cb_storage_dagster.demo

# Deployment tests: PostgreSQL (pip wheel), Playwright (pip), Chromium (Debian package; never
# `playwright install`, which downloads a browser). Idempotent: apt runs only without /usr/bin/chromium.
setup-deploy-tests: setup
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test-deploy]"
	@test -x /usr/bin/chromium || { \
	  command -v apt-get >/dev/null || { echo "Chromium is required for the UI test: install the Debian package 'chromium'"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
test: setup-deploy-tests

## make test: set up (Python packages + Azurite from npm), then run the whole suite
test: setup node_modules/.bin/azurite-blob
	$(BIN)/python -m pytest -p no:cacheprovider

## make bench: quick benchmark (CI size): ours vs raw delta-rs, a one-file floor and dagster-deltalake-pandas;
## then a day fetched by the ccxt source from the local fake exchange (requests, wall time)
bench: setup
	$(BIN)/python benchmarks/bench.py --quick
	$(BIN)/python benchmarks/ccxt_fetch.py

## make bench-full: full size (8 instruments x 365 days of 1-minute candles), about 6 minutes
bench-full: setup
	$(BIN)/python benchmarks/bench.py

## make bench-scale: the two Delta layouts at 2,000 instruments x 30 days (not in CI; tens of minutes, ~10 GB of temporary disk)
bench-scale: setup
	$(BIN)/python benchmarks/bench_scale.py

## make bench-cold: a new process opening a table (30-day read, list_coins), both layouts, 500 instruments x 10 days (minutes; docs/PERFORMANCE.md)
bench-cold: setup
	$(BIN)/python benchmarks/bench_cold_reads.py

## make bench-scale-orchestration: daily tick, sensor, one exchange-day run, source/transform times and the peak RSS of 2- and 31-exchange-day runs at 2,000 instruments (about an hour on 2 cores; docs/SCALE.md)
bench-scale-orchestration: setup
	$(BIN)/python benchmarks/scale_orchestration.py --instruments 2000

## make screenshots: run the browser test and, when it passes, refresh docs/img/*.png (needs /usr/bin/chromium)
screenshots: setup-deploy-tests
	CB_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -p no:cacheprovider -q cb_storage_dagster_tests/test_ui_browser.py

## make bench-peer: the product (both layouts) against ArcticDB 6.28.2 (own venv benchmarks/.venv-arcticdb) at 2,000 x 30
## (not in CI: ~13 min at full size, ~2 min at 500 x 20; `benchmarks/peer_bench.py --instruments N --days N` resizes it). docs/PERFORMANCE.md
bench-peer: setup
	$(BIN)/python benchmarks/peer_bench.py

## make bench-latency: reads through Azurite behind a 10 ms-each-way TCP proxy on 127.0.0.1, as multiples of the round trip
bench-latency: setup node_modules/.bin/azurite-blob
	$(BIN)/python benchmarks/bench_latency.py

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules .dagster_home data
