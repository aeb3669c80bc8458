# ssl-course-kit: the two commands of the README are `make demo` and `make test`.
# Both create .venv on first use (offline apart from the package registries).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The PyTorch build used for development and CI; override for another platform,
# e.g. `make TORCH="torch torchvision" test`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
BUILD  := build

.PHONY: setup demo notebooks release test test-fast clean

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

## The whole test suite: unit tests, notebook sync, autograder end to end, and
## every master notebook executed by nbval in fast mode.
test: setup
	COURSE_FAST=1 $(PY) -m pytest tests autograder/source --nbval-lax --nbval-current-env \
		-p no:cacheprovider --durations=15

## Unit tests only (seconds).
test-fast: setup
	$(PY) -m pytest tests -m "not notebook" -p no:cacheprovider

clean:
	rm -rf $(BUILD) autograder/release autograder/submitted autograder/autograded \
		autograder/feedback autograder/gradebook.db
