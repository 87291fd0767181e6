# rote: `make test` is the one test command (CI runs it through .ci/run); `make run` runs the pipeline once.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rote-installed
PYTEST_ARGS ?=

.PHONY: setup setup-run test checks lint typecheck pytest run clean-venv lock

## setup: missing Debian packages, .venv with rote and its test extras, the Apache Kafka jars (~/.cache/rote)
setup: $(STAMP)
	bash deploy/scripts/system-deps.sh test
	$(BIN)/python -m rote.brokers fetch-kafka

## setup-run: only what `rote run` needs (bubblewrap for the sandbox, the venv)
setup-run: $(STAMP)
	bash deploy/scripts/system-deps.sh run

$(STAMP): pyproject.toml deploy/constraints.txt
	bash deploy/scripts/system-deps.sh run
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c deploy/constraints.txt -e '.[test]'
	touch $(STAMP)

## lock: write the installed versions to deploy/constraints.txt (after a full `make test` passed with them)
lock: $(STAMP)
	{ sed -n '/^#/p' deploy/constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | LC_ALL=C sort -f; } > deploy/constraints.txt.new
	mv deploy/constraints.txt.new deploy/constraints.txt

## test: lint, type-check and the whole pytest suite (integration tests on Tansu and Apache Kafka).
## All three always run, so one log shows every problem; any failure fails the target.
test: setup
	@status=0; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(MAKE) --no-print-directory typecheck || status=1; \
	$(MAKE) --no-print-directory checks || status=1; \
	$(MAKE) --no-print-directory pytest || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see above)" >&2; fi; \
	exit $$status

## checks: generated files are fresh (JSON Schema, dashboards) and promtool accepts the rules and their tests
checks: setup
	$(BIN)/rote schemas check
	PATH="$(abspath $(BIN)):$$PATH" bash deploy/check-observability.sh

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy rote streams agents sandbox_runner dashboards tests

# pytest exits 5 when it collects nothing; that must never count as a pass.
pytest: setup
	@$(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing the run" >&2; exit 1; fi; \
	exit $$rc

## run: one pass of the pipeline on the embedded broker
run: setup-run
	$(BIN)/rote run --once

clean-venv:
	rm -rf $(VENV)
