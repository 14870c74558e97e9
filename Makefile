# Sluiceway developer commands. Quick start: `make demo`, then `make test`.
#
# Every target runs from the project's own virtualenv (.venv), built on first
# use from whatever python3.11 (or python3 >= 3.11) is on PATH.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# One shell per recipe: the demo's background stack, trap and poll loop share it.
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Re-run the installs only when the dependencies change.
STAMP := $(VENV)/.sluiceway-installed
# The CPU build installs from a local wheel here; on a GPU host pass the CUDA
# build, e.g. TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'.
TORCH_SPEC ?= torch==2.13.0
DEMO_PORT ?= 8000
DEMO_LOG := .sluiceway/demo-up.log
# The demo's own state (SQLite, local S3, logs) and Redis namespace, made anew each
# run: its endpoints never linger into a later `sluice up`, nor pile up run after run.
DEMO_HOME := .sluiceway/demo
DEMO_NAMESPACE := sluiceway-demo
READY_TIMEOUT_S ?= 180
# The demo keeps up to seven variant workers and two component copies of tiny
# models alive at once: it lets the local backend run and place that many even
# on a 2-core host.
DEMO_CPU_SLOTS ?= 8

.PHONY: help venv demo up test lint fmt clean

help:
	@echo "make demo   start the whole stack, run the guided demo against it, stop it"
	@echo "make test   ruff, ruff format --check, mypy and pytest (unit + integration)"
	@echo "make up     run the whole stack in the foreground (sluice up)"
	@echo "make venv   create .venv and install the project with every extra"
	@echo "make lint   ruff and mypy only;  make fmt   format and autofix"
	@echo "make clean  remove caches"

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), f"need Python >= 3.11, $(PYTHON) is {sys.version.split()[0]}"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, so the project's `torch>=...` floor is already met and pip
	# never pulls a CUDA build with its NVIDIA packages on its own.
	$(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/pip install -e '.[all]'
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	@mkdir -p "$$(dirname $(DEMO_LOG))"
	rm -rf $(DEMO_HOME)
	export SLUICEWAY_HOME=$(DEMO_HOME) SLUICEWAY_NAMESPACE=$(DEMO_NAMESPACE)
	echo "starting the stack: sluice up --port $(DEMO_PORT) (log: $(DEMO_LOG))"
	SLUICEWAY_LOCAL_CPU_SLOTS=$(DEMO_CPU_SLOTS) SLUICEWAY_HOST_CPU_CORES=$(DEMO_CPU_SLOTS) \
		$(BIN)/sluice up --port $(DEMO_PORT) --ready-timeout-s $(READY_TIMEOUT_S) >$(DEMO_LOG) 2>&1 &
	up=$$!
	# Whatever happens below, stop the stack this recipe started and wait for it.
	stop_up() { kill -TERM "$$up" 2>/dev/null || true; wait "$$up" 2>/dev/null || true; }
	trap stop_up EXIT
	trap 'exit 130' INT TERM
	deadline=$$((SECONDS + $(READY_TIMEOUT_S)))
	until $(BIN)/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
			"http://127.0.0.1:$(DEMO_PORT)/readyz" 2>/dev/null; do
		if ! kill -0 "$$up" 2>/dev/null; then
			echo "sluice up exited before it was ready; the end of its log:"
			tail -n 40 $(DEMO_LOG)
			exit 1
		fi
		if (( SECONDS > deadline )); then
			echo "the stack was not ready within $(READY_TIMEOUT_S) s; the end of its log:"
			tail -n 40 $(DEMO_LOG)
			exit 1
		fi
		sleep 0.5
	done
	echo "stack ready at http://127.0.0.1:$(DEMO_PORT)"
	SLUICEWAY_API_URL="http://127.0.0.1:$(DEMO_PORT)" $(BIN)/sluice demo
	echo "demo done; stopping the stack"

up: $(STAMP)
	$(BIN)/sluice up

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache build dist
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
