# The README's two commands: `make run` (the demo lab) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean-data system-deps web web-test browser-deps wheel screenshots fuzz audit-deps

# PDF reports need Pango (present on Debian desktops/servers) and HarfBuzz's subsetter, which
# makes WeasyPrint ~7x faster at embedding fonts. Installed when we may (root), else a hint.
# The serial-port tests link two pseudo-terminals with socat (they skip without it).
# The report tests read PDFs back as people do, with pdftotext (poppler-utils).
# Uploads are typed from their content by libmagic (python-magic).
SYSTEM_LIBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 socat poppler-utils libmagic1

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

system-deps:
	@missing=""; for lib in $(SYSTEM_LIBS); do dpkg -s $$lib >/dev/null 2>&1 || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing system libraries:$$missing"; \
	    (apt-get install -y -qq $$missing >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null)) || echo "Could not install$$missing; PDF reports may be slow or fail."; \
	  else echo "Hint: sudo apt-get install$$missing  (PDF reports need them)"; fi; \
	fi

run: $(STAMP) system-deps web
	NIDAAN_MODE=demo $(BIN)/nidaan demo run

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

# Line and branch coverage of src/nidaan; the floor is in pyproject.toml ([tool.coverage.report]).
test: lint system-deps web-test
	$(BIN)/pytest -n 2 -q --cov --cov-report=term --durations=20

# schemathesis over the whole OpenAPI document with a large budget and the stateful phase
# (`make test` runs the same with a small one); summary in var/fuzz/summary.txt.
fuzz: $(STAMP)
	NIDAAN_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),200) \
	NIDAAN_FUZZ_PHASES=examples,coverage,fuzzing,stateful \
	$(BIN)/pytest -q -s -n 0 tests/security/test_fuzz_openapi.py

# Known vulnerabilities in the locked dependencies (pip-audit, npm audit); allow-list in
# .pip-audit-allow.txt. NIDAAN_AUDIT_DEPS_REQUIRED=1 fails when advisories are unreachable.
audit-deps: $(STAMP)
	BIN=$(BIN) bash scripts/audit_deps.sh

# The data directory of `make run` (the same NIDAAN_DATA_DIR the server reads, default ./var).
DATA_DIR := $(or $(NIDAAN_DATA_DIR),var)

clean-data:
	@case "$(DATA_DIR)" in ""|/|.|..) echo "Refusing to delete '$(DATA_DIR)'"; exit 1;; esac
	rm -rf "$(DATA_DIR)"

# ---- the staff web application (web/: TypeScript, SvelteKit, built into the Python package) ----
# Node.js 20+ and npm build it; the lock file pins every package. Without npm, `make run` still
# serves the API and the root page says how to build the app.
WEB_DIST := src/nidaan/webui/dist/index.html
WEB_SOURCES := $(shell find web/src web/static -type f 2>/dev/null) web/svelte.config.js \
	web/vite.config.ts web/package-lock.json
# Browser tests drive Debian's chromium (Playwright cannot download its own browser here).
BROWSER_PACKAGES := chromium fonts-noto-core

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_DIST): web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run --silent build >/dev/null
	@echo "Built the web app into src/nidaan/webui/dist"

web:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(WEB_DIST); \
	else echo "Hint: install Node.js 20+ and npm to build the web app (make web)"; fi

browser-deps:
	@missing=""; for pkg in $(BROWSER_PACKAGES); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing for the browser tests:$$missing"; \
	    (apt-get install -y -qq $$missing >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null)); \
	  else echo "The browser tests need:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi

# Unit tests (Vitest) and browser tests (Playwright + chromium against a real `nidaan demo run`).
web-test: $(STAMP) browser-deps
	@$(MAKE) --no-print-directory $(WEB_DIST)
	cd web && npx vitest run && npx playwright test

# Retake the committed screenshots under docs/ui/ (the browser tests take them as they go).
screenshots: $(STAMP) browser-deps
	@$(MAKE) --no-print-directory $(WEB_DIST)
	cd web && NIDAAN_UPDATE_SCREENSHOTS=1 npx playwright test

# A wheel that carries the built web app (pip users get the UI without Node).
wheel: $(STAMP) web
	$(BIN)/python -m pip wheel --no-deps -q -w dist .
	@ls dist/*.whl
