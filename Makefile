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
	$(VENV)/bin/hwnas quickstart --out $(RUN)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) bench/profile_zoo.py
	$(PY) bench/train_throughput.py
	$(PY) bench/dnas_step.py
	$(PY) bench/oneshot_step.py
	$(PY) bench/darts_step.py --steps 3
	$(PY) bench/darts_hardware.py
	$(PY) bench/fbnet_se_step.py --batch 32 --steps 1
	$(VENV)/bin/hwnas latency validate fbnet --samples 50

clean:
	rm -rf $(VENV) runs .pytest_cache
