# Two commands matter: `make demo` and `make test`. Both install what is missing first and are
# fast when everything is already there (stamp files record what was installed from what).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP   := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# Slither needs web3<8, the package pins web3==8.0.0: it gets a venv of its own (requirements-slither.txt).
SLITHER_VENV  := .venv-slither
SLITHER_STAMP := $(SLITHER_VENV)/.installed
PYTEST_ARGS ?=
# `make mutation` (never part of `make test`): mutmut and the project in a venv of their own.
MUTATION_VENV  := .venv-mutation
MUTATION_STAMP := $(MUTATION_VENV)/.installed

.PHONY: install demo test test-python test-contracts slither compile artifacts bench clean mutation coverage-contracts

install: $(PY_STAMP) $(NODE_STAMP)

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(PY_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[compress,dev]"
	touch $@

$(SLITHER_STAMP): requirements-slither.txt
	test -x $(SLITHER_VENV)/bin/python || $(PYTHON) -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/python -m pip install -q --upgrade pip
	$(SLITHER_VENV)/bin/python -m pip install -q -r requirements-slither.txt
	touch $@

$(MUTATION_STAMP): pyproject.toml requirements-mutation.txt
	test -x $(MUTATION_VENV)/bin/python || $(PYTHON) -m venv $(MUTATION_VENV)
	$(MUTATION_VENV)/bin/python -m pip install -q --upgrade pip
	$(MUTATION_VENV)/bin/python -m pip install -q -e ".[dev]" -r requirements-mutation.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

compile: $(NODE_STAMP)
	npx hardhat compile --quiet

# Refreshes the committed ABI + bytecode that the Python package ships.
artifacts: compile $(PY_STAMP)
	$(BIN)/python scripts/export_artifacts.py

# The main job end to end on the embedded defaults, then one oracle round on the same local chain.
demo: install
	$(BIN)/python scripts/demo.py
	$(BIN)/python scripts/demo_oracle.py
	@echo "The demo's local chain keeps running (state in .registry-demo/home); stop it with:"
	@echo "  REGISTRY_HOME=.registry-demo/home $(BIN)/registry chain down"
	@echo "Browse what it published: REGISTRY_HOME=.registry-demo/home $(BIN)/registry serve"
	@echo "  then open http://127.0.0.1:8470/models/demo/digits-mlp"

test: test-contracts slither test-python

test-contracts: $(NODE_STAMP)
	npx hardhat test

# Fails on any Slither finding above informational not explained in contracts/slither-triage.txt.
slither: $(SLITHER_STAMP) $(PY_STAMP) compile
	$(BIN)/python scripts/slither_check.py

test-python: install compile
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

# Figures quoted in the issues' closing notes; each script measures its own baseline in the same run.
bench: install
	$(BIN)/python bench/gas.py
	$(BIN)/python bench/cid.py
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/compress.py
	$(BIN)/python bench/compress_transformer.py
	$(BIN)/python bench/oracle.py
	$(BIN)/python bench/explorer.py
	$(BIN)/python bench/durability.py
	$(BIN)/python bench/update.py

# Mutation testing of the trust core (tests/mutation_map.toml), cached in build/mutation/; about 40 min
# from a cold cache on 2 cores (verify/procedure.py is a quarter of it), seconds after a small change.
# MUTATION_MODULES=a.py,b.py picks modules, MUTATION_FRESH=1 drops the cache.
# Prints the per-module table and the surviving mutants.
mutation: $(MUTATION_STAMP) $(NODE_STAMP)
	nice -n 19 $(MUTATION_VENV)/bin/python scripts/mutation.py

# Line and branch coverage of the contracts (solidity-coverage, offline with the solcjs override);
# fails when a contract's branch coverage drops below 95%.
coverage-contracts: $(NODE_STAMP)
	nice -n 19 npx hardhat --config hardhat.coverage.config.js coverage
	node scripts/contract_coverage.js 95

clean:
	rm -rf build .pytest_cache .hypothesis
