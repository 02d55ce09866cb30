# Two commands for a newcomer: `make quickstart` (the main job) and `make test`.
# Each creates .venv on first use and installs pinned versions (constraints.txt).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN ?= runs/quickstart

.PHONY: quickstart test lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0 -e '.[dev]'
	touch $@

quickstart: $(VENV)/.installed
	rm -rf $(RUN)
	$(VENV)/bin/hwnas zoo
	$(VENV)/bin/hwnas show fbnet_a
	$(VENV)/bin/hwnas profile fbnet_a --latency --threads 2
	$(VENV)/bin/hwnas export fbnet_a --format onnx -o $(RUN)/fbnet_a.onnx
	$(VENV)/bin/hwnas train mobilenet_v2 --data digits --input 3x32x32 --epochs 10 --lr 0.02 --no-flip --run-dir $(RUN)/train
	$(VENV)/bin/hwnas eval mobilenet_v2 --weights $(RUN)/train/model.pt --run-dir $(RUN)/eval

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) bench/profile_zoo.py
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
