# Two commands for a new user: `make demo` (run the pipeline locally) and `make test`.
# Everything else here is what those two use, plus conveniences (ui, serve, lint, bench, lock).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INPUT ?=

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER ?= $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER ?= $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
# `make ui` serves the UI, the REST API and the reports on this machine only (Airflow's default
# is 0.0.0.0); `make ui AIRFLOW__API__HOST=0.0.0.0` opens them to the network.
export AIRFLOW__API__HOST ?= 127.0.0.1
# The UI's port (`make ui UI_PORT=8081`); task processes reach the execution API on the same port.
UI_PORT ?= 8080
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: demo test test-unit venv airflow-db ui serve stop lint format bench lock clean

## Create .venv (or reuse it while requirements.txt is unchanged).
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

## The Airflow metadata database for the demo (SQLite inside .airflow/).
airflow-db: $(AIRFLOW_HOME)/airflow.db
$(AIRFLOW_HOME)/airflow.db: | venv
	@mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/migrate.log; exit 1)

## Run reviews_pipeline end to end on the local target; INPUT=<path or s3 URI> for your file.
demo: venv airflow-db
	$(BIN)/python -m include.pipeline.demo --input "$(INPUT)"

## Install and run the whole test suite (starts / installs the services it uses when it can).
test: venv
	@bash scripts/test_services.sh
	$(BIN)/python -m pytest

## The unit tests alone (no services, no Airflow database, no browser): a quick check while editing.
test-unit: venv
	$(BIN)/python -m pytest -m unit

## The Airflow UI (api-server, scheduler, dag-processor, triggerer) at http://127.0.0.1:$(UI_PORT).
## Standalone starts its services as `airflow` from PATH: scripts/ui/airflow is the venv's, with
## the task log servers (which would listen on every interface) left off.
ui: venv airflow-db
	PATH="$(CURDIR)/scripts/ui:$(CURDIR)/$(BIN):$$PATH" AIRFLOW_UI_BIN="$(CURDIR)/$(BIN)" \
	AIRFLOW__API__PORT=$(UI_PORT) \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$(UI_PORT)/execution/ \
	AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST=127.0.0.1 \
	$(BIN)/airflow standalone

## The local SageMaker endpoint service, in the foreground (the demo starts one in the background).
serve: venv
	$(BIN)/python -m include.pipeline.targets.local.endpoint.host

## Stop the background endpoint service the demo started.
stop: venv
	$(BIN)/python -m include.pipeline.targets.local.endpoint.client stop

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Every benchmark; each prints one JSON object on its last line.
bench: venv
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## Re-pin requirements.txt from requirements.in in a throwaway venv.
lock:
	rm -rf /tmp/reviews-lock && $(PYTHON) -m venv /tmp/reviews-lock
	/tmp/reviews-lock/bin/pip install --quiet --upgrade pip
	/tmp/reviews-lock/bin/pip install --quiet -r requirements.in
	{ echo "# Generated from requirements.in by 'make lock'. Install this file."; \
	  /tmp/reviews-lock/bin/pip freeze | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.txt

clean:
	rm -rf .airflow .lake test-artifacts
