PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: run test setup setup-test data train evaluate bench clean

run: setup
	$(PY) app.py --host $(HOST) --port $(PORT)

setup:
	@scripts/setup.sh run

setup-test:
	@scripts/setup.sh test

test: setup-test
	$(PY) -m ruff check --select F,E9 --quiet musicgen_app tests bench scripts app.py
	$(PY) -m pytest -q tests

data: setup
	$(PY) -m musicgen_app.data

train: data
	$(PY) -m musicgen_app.train lstm
	$(PY) -m musicgen_app.train vae

evaluate: setup
	$(PY) -m musicgen_app.evaluate

bench: setup
	$(PY) bench/bench_render.py
	$(PY) bench/bench_service.py
	$(PY) bench/bench_app.py

clean:
	rm -rf .venv .pytest_cache
