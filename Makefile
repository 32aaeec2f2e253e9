# yolov9lite: two commands from a fresh clone (see README.md)
#   make figures   regenerate the tables and figures at the default (laptop) scale
#   make test      run the test suite (what CI runs)
#   make book      the executed notebooks of `make figures` as a static site: runs/book/html/
#                  (SCALE=gpu-hour: the run of `yolov9lite figures --scale gpu-hour`)
# Both create ./.venv on first use and install the package with its extras into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_CONSTRAINTS ?= -c constraints.txt
# TORCH=cpu: take torch/torchvision from PyTorch's CPU-only wheel index (about 0.2 GB instead of
# several GB of CUDA libraries), for machines without an NVIDIA GPU. Default: PyPI only.
TORCH ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
STAMP := $(VENV)/.installed
SCALE ?= default
# The official YOLOv9 code, the test oracle (tests/official_code.py): pinned, without its declared
# requirements (see the 'official' extra in pyproject.toml); it needs Python >= 3.11.
YOLO9 := yolo9==1.0.18; python_version >= "3.11"
# The albumentations release the official Albumentations class is tested with (also in the
# 'official' extra, which installs its runtime deps: scikit-image, qudida, scikit-learn).
# Named here again so that the --no-deps line below puts exactly this version back should
# something else have replaced it; yolo9 asks for >=1.0.3,<1.4.
ALBUMENTATIONS := albumentations==1.3.1

.PHONY: install figures book models test lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	if [ "$(TORCH)" = "cpu" ]; then \
		$(PY) -m pip install $(TORCH_CONSTRAINTS) --index-url $(TORCH_CPU_INDEX) torch torchvision; \
	elif [ -n "$(TORCH)" ]; then echo "TORCH=$(TORCH): only TORCH=cpu is known" >&2; exit 2; fi
	$(PY) -m pip install $(TORCH_CONSTRAINTS) -e ".[train,notebooks,dev,export,book,official]"
	$(PY) -m pip install --no-deps '$(YOLO9)' '$(ALBUMENTATIONS)'
	touch $(STAMP)

install: $(STAMP)

# no MPLBACKEND here: the kernel's inline backend keeps every plt.show() in the executed notebook
figures: $(STAMP)
	$(PY) -m yolov9lite figures --scale $(SCALE)

book: $(STAMP)
	$(PY) -m yolov9lite book --scale $(SCALE)

models: $(STAMP)
	$(PY) -m yolov9lite models

test: $(STAMP)
	$(PY) -m ruff check yolov9lite tests benchmarks book
	@# the committed notebooks are checked by tests/test_notebooks_stripped.py (git's copy), so
	@# a notebook run in JupyterLab (outputs in the working file) never fails this target
	@$(PY) -m nbstripout --verify notebooks/*.ipynb 2>/dev/null || echo "note: notebooks/ hold \
	outputs from a run; the pre-commit hook strips them (or: $(PY) -m nbstripout notebooks/*.ipynb)"
	MPLBACKEND=Agg $(PY) -m pytest -q --durations=25 \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=300 tests notebooks

lint: $(STAMP)
	$(PY) -m ruff check yolov9lite tests benchmarks book

clean:
	rm -rf $(VENV) runs .pytest_cache
