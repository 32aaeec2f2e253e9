# yolov9lite: two commands from a fresh clone (see README.md)
#   make figures   regenerate the tables and figures at the default (laptop) scale
#   make test      run the test suite (what CI runs)
# Both create ./.venv on first use and install the package with its extras into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_CONSTRAINTS ?= -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install figures models test lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH_CONSTRAINTS) -e ".[train,notebooks,dev]"
	touch $(STAMP)

install: $(STAMP)

figures: $(STAMP)
	MPLBACKEND=Agg $(PY) -m yolov9lite figures

models: $(STAMP)
	$(PY) -m yolov9lite models

test: $(STAMP)
	$(PY) -m nbstripout --verify notebooks/*.ipynb
	MPLBACKEND=Agg $(PY) -m pytest -q --durations=25 \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=300 tests notebooks

lint: $(STAMP)
	$(PY) -m ruff check yolov9lite tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
