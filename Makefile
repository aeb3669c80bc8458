# ssl-course-kit: the two commands of the README are `make demo` and `make test`.
# Both create .venv on first use (offline apart from the package registries).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The PyTorch build used for development and CI; override for another platform,
# e.g. `make TORCH="torch torchvision" test`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
BUILD  := build

.PHONY: setup demo notebooks release test test-main floor-env test-floor test-fast clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

## The main job: run every master notebook in fast mode, then autograde the
## reference submissions and print the grades and where the outputs are.
demo: setup notebooks
	$(PY) -m autograder demo
	@echo "executed notebooks (fast mode): $(CURDIR)/$(BUILD)/executed/"

## Execute every master notebook end to end in fast mode into build/executed/.
notebooks: setup
	mkdir -p $(BUILD)/executed
	COURSE_FAST=1 $(PY) -m jupyter nbconvert --to notebook --execute \
		--ExecutePreprocessor.timeout=600 --output-dir $(BUILD)/executed \
		autograder/source/*/*.ipynb

## Regenerate the student notebooks in notebooks/ from the masters.
release: setup
	$(PY) -m autograder release --all

## The whole test suite (what CI runs): the main suite while the floor environment installs
## beside it, then Colab's stack at the floors.
test: setup
	$(MAKE) -j2 test-main floor-env
	$(MAKE) test-floor

## Unit tests, notebook sync, autograder end to end, and every master notebook executed
## by nbval in fast mode, in .venv (the newest releases pyproject.toml allows here).
test-main: setup
	COURSE_FAST=1 $(PY) -m pytest tests autograder/source --nbval-lax --nbval-current-env \
		-p no:cacheprovider --durations=15

## Colab's stack: a second environment at every floor of pyproject.toml (.ci/floor.txt:
## the oldest torch, ipywidgets 7), running the widgets, the visible checks, the hand-on
## of encoders, and every cell of every master notebook in grading mode (each training
## stops after 2 steps: the floor checks that the code runs there; test-main checks in
## fast mode that it learns).
FLOOR      := .ci/floor.txt
FLOOR_VENV ?= .venv-floor
FLOOR_PY   := $(FLOOR_VENV)/bin/python

$(FLOOR_VENV)/.installed: pyproject.toml $(FLOOR)
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_PY) -m pip install --quiet -c $(FLOOR) torch torchvision
	$(FLOOR_PY) -m pip install --quiet -c $(FLOOR) -e ".[dev]"
	touch $@

floor-env: $(FLOOR_VENV)/.installed

test-floor: floor-env
	$(FLOOR_PY) -m pip freeze | grep -i -E '^(torch|torchvision|ipywidgets|numpy)=='
	COURSE_FAST=1 COURSE_FLOOR_ENV=1 $(FLOOR_PY) -m pytest tests/project/test_floor.py \
		tests/unit/course_utils/test_plots_widgets.py \
		tests/unit/course_utils/checks/test_checks_simclr.py \
		tests/unit/course_utils/checks/test_checks_moco.py \
		tests/unit/course_utils/checks/test_checks_mae.py \
		tests/unit/course_utils/checks/test_checks_dino.py \
		tests/unit/course_utils/checks/test_checks_segments.py \
		tests/unit/course_utils/test_handoff.py tests/unit/course_utils/test_segments.py \
		-p no:cacheprovider
	COURSE_MODE=grading $(FLOOR_PY) -m pytest autograder/source --nbval-lax --nbval-current-env \
		-p no:cacheprovider

## Unit tests only (seconds).
test-fast: setup
	$(PY) -m pytest tests -m "not notebook" -p no:cacheprovider

clean:
	rm -rf $(BUILD) autograder/release autograder/submitted autograder/autograded \
		autograder/feedback autograder/gradebook.db
