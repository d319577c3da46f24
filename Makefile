# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo demo-lm test bench lint clean

install: $(STAMP)

# The venv is rebuilt when the dependency pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rnnkit demo

# A character LSTM on 33 Shakespeare plays for a few minutes: held-out bits/char, loss curve, a sample.
demo-lm: $(STAMP)
	$(VENV)/bin/rnnkit lm train --data shakespeare --hidden-size 256 --embedding-size 128 --epochs 1 \
		--max-minutes 4 --out runs/demo-lm
	$(VENV)/bin/rnnkit lm generate runs/demo-lm --prime "ROMEO:" --length 400 --temperature 0.7

test: $(STAMP)
	$(PY) -m pytest -n 2 tests

bench: $(STAMP)
	$(PY) bench/layers.py
	$(PY) bench/kernels.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
