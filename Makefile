PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 7860
# REPLICAS=N: the models on N Ray Serve replicas of a local Ray (installs requirements-ray.txt); 0: one process
REPLICAS ?= 0
RAY := $(if $(filter-out 0,$(REPLICAS)),ray)

.PHONY: run test test-fast lint setup setup-test data train evaluate bench clean

run: setup
	$(PY) app.py --host $(HOST) --port $(PORT)$(if $(RAY), --replicas $(REPLICAS))

setup:
	@scripts/setup.sh run $(RAY)

setup-test:
	@scripts/setup.sh test

test: setup-test lint
	$(PY) -m pytest -q --durations=15 tests

# Everything but the end-to-end and browser tests (which start the app): under a minute.
test-fast: setup-test lint
	$(PY) -m pytest -q -m "not e2e and not browser" tests

lint: setup-test
	$(PY) -m ruff check --quiet .

data: setup
	$(PY) -m musicgen_app.training.corpus

train: data
	$(PY) -m musicgen_app.training.train lstm
	$(PY) -m musicgen_app.training.train vae

evaluate: setup
	$(PY) -m musicgen_app.training.evaluate

bench: setup
	PYTHONPATH=. $(PY) bench/bench_render.py
	PYTHONPATH=. $(PY) bench/bench_service.py
	PYTHONPATH=. $(PY) bench/bench_app.py

clean:
	rm -rf .venv .pytest_cache
