# The README's two commands: `make run` (the demo lab) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean-data system-deps

# PDF reports need Pango (present on Debian desktops/servers) and HarfBuzz's subsetter, which
# makes WeasyPrint ~7x faster at embedding fonts. Installed when we may (root), else a hint.
# The serial-port tests link two pseudo-terminals with socat (they skip without it).
# The report tests read PDFs back as people do, with pdftotext (poppler-utils).
SYSTEM_LIBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 socat poppler-utils

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

run: $(STAMP) system-deps
	NIDAAN_MODE=demo $(BIN)/nidaan demo run

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

# Line and branch coverage of src/nidaan; the floor is in pyproject.toml ([tool.coverage.report]).
test: lint system-deps
	$(BIN)/pytest -n 2 -q --cov --cov-report=term

# The data directory of `make run` (the same NIDAAN_DATA_DIR the server reads, default ./var).
DATA_DIR := $(or $(NIDAAN_DATA_DIR),var)

clean-data:
	@case "$(DATA_DIR)" in ""|/|.|..) echo "Refusing to delete '$(DATA_DIR)'"; exit 1;; esac
	rm -rf "$(DATA_DIR)"
