# Two entry points for a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test test-ts lint gen bench

$(BIN)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./clients/python -e '.[dev]'
	touch $@

# Node is needed only to generate and test the TypeScript client and to build the console;
# `make run` serves the console's committed build without it.
clients/node_modules/.installed: clients/package-lock.json clients/*/package.json
	cd clients && npm ci --no-audit --no-fund
	touch $@

# The database is ./signoff.db (git-ignored); the signing key goes to ~/.local/state/signoff
# ($XDG_STATE_HOME, or SIGNOFF_STATE_DIR), never into the repository (docs/audit-keys.md).
run: $(BIN)/.installed  ## install, then serve the example policies on SQLite
	$(BIN)/signoff serve

# All three parts run even when one fails (a pytest failure must not hide a broken policy case
# or TypeScript test); a summary names each part's result, and the target fails if any did.
test: $(BIN)/.installed  ## install, then run the whole test suite and the example policies' cases
	@failed=""; \
	$(BIN)/pytest -q || failed="$$failed pytest"; \
	$(BIN)/signoff policy test policies || failed="$$failed policy-cases"; \
	$(MAKE) --no-print-directory test-ts || failed="$$failed typescript"; \
	echo; \
	for part in pytest policy-cases typescript; do \
		case " $$failed " in *" $$part "*) echo "FAILED: $$part";; *) echo "passed: $$part";; esac; \
	done; \
	[ -z "$$failed" ]

# The TypeScript client's tests start a real `signoff serve` from this venv. Without Node they
# are skipped with a reason, except where SIGNOFF_REQUIRE_NODE is set (CI), which fails.
test-ts: $(BIN)/.installed
	@if command -v npm >/dev/null; then \
		$(MAKE) --no-print-directory clients/node_modules/.installed && \
		cd clients && SIGNOFF_BIN=$(abspath $(BIN))/signoff npm test -w @signoff/client; \
	elif [ -n "$$SIGNOFF_REQUIRE_NODE" ]; then \
		echo "TypeScript client tests: npm not found and SIGNOFF_REQUIRE_NODE is set" >&2; exit 1; \
	else \
		echo "SKIPPED: TypeScript client tests (Node.js and npm are not installed)"; \
	fi

lint: $(BIN)/.installed clients/node_modules/.installed  ## generated code and schemas fresh, ruff clean
	$(BIN)/python scripts/gen_proto.py --check
	$(BIN)/python scripts/build_console.py --check
	$(BIN)/signoff policy schema --check
	$(BIN)/signoff config reference --check
	$(BIN)/python scripts/check_docs.py
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

gen: $(BIN)/.installed clients/node_modules/.installed  ## regenerate protobuf/gRPC code from proto/
	$(BIN)/python scripts/gen_proto.py

bench: $(BIN)/.installed  ## run the benchmarks, write bench/results/
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py
