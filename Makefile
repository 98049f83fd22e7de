# pacsmig: two entry points, `make demo` and `make test`. Both set up .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup peers test demo lint schema bench clean

# Byte-compiled once here: where PYTHONDONTWRITEBYTECODE is set, every run would otherwise
# compile the runner's modules again (70 ms of each start).
setup: $(VENV)/.installed
	@$(PY) -m compileall -q runner

$(VENV)/.installed: pyproject.toml
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# What the tests talk to or look with, from Debian: the DICOM peers (Orthanc with its DICOMweb
# plugin, DCMTK) and headless Chromium with poppler to render the sign-off report.
PEER_PACKAGES := orthanc orthanc-dicomweb dcmtk openjph-tools chromium poppler-utils fonts-dejavu-core
peers:
	@missing=""; \
	[ -x /usr/sbin/Orthanc ] || missing="$$missing orthanc"; \
	[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing="$$missing orthanc-dicomweb"; \
	command -v storescu >/dev/null 2>&1 || missing="$$missing dcmtk"; \
	command -v ojph_compress >/dev/null 2>&1 || missing="$$missing openjph-tools"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v pdftoppm >/dev/null 2>&1 || missing="$$missing poppler-utils fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

test: setup peers
	$(VENV)/bin/ruff check runner tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

# The whole job on loopback: simulated PACS -> runner -> embedded archive, then the reports.
demo: setup
	$(VENV)/bin/pacsmig demo

lint: setup
	$(VENV)/bin/ruff check runner tests benchmarks
	$(VENV)/bin/mypy

schema: setup
	$(VENV)/bin/pacsmig schema > schemas/site-profile.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
