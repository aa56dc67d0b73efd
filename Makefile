# The two set-up commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
FMNIST := /usr/share/datasets/fashion-mnist
RECIPE ?= recipes/fashion_mnist_mlp.yaml
# torch first, pinned to the local CPU wheel, so no later requirement can pull a CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: run test venv data browser bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq "$(TORCH)"
	$(PY) -m pip install -qq -e ".[test,export,serve,compress]"
	touch $@

venv: $(VENV)/.installed

# Fashion-MNIST from Debian's dataset-fashion-mnist when we may install packages; otherwise
# trainlab looks in $$TRAINLAB_DATA and ~/.cache/trainlab and downloads as a last resort.
data:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing dataset-fashion-mnist with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null; \
	fi

# Chromium for the test that opens report.html in a real headless browser (skipped without it).
browser:
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
			|| echo "could not install chromium: the report browser test will be skipped"; \
	fi

run: venv data
	$(VENV)/bin/trainlab train $(RECIPE)

test: venv data browser
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

# `make bench BENCH_ARGS=--quick` for a smoke run; see docs/performance.md
bench: venv data
	$(PY) -m pip install -qq -e ".[bench]"
	@if ! command -v ab >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing apache2-utils (ab, the serving benchmark's load generator) with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apache2-utils) >/dev/null \
			|| echo "could not install apache2-utils: benchmarks/serve.py falls back to an httpx client"; \
	fi
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
