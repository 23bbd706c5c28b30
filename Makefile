# The two commands of README.md: `make run` (the main job) and `make test` (the test suite).
# Both set a fresh machine up first: Debian packages via apt-get, then a venv with the pinned stack.

VENV := .venv
PYTHON ?= python3
# espeak-ng, flite, fortunes: synthetic voices and their sentences; dpkg-deb and apt-get
# download the Debian speech packages (fetched by the corpus stage, never installed).
APT_PACKAGES := espeak-ng flite fortunes
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: run test setup system-packages clean-state

run: setup
	snakemake --cores all

test: setup
	pytest

setup: system-packages $(VENV)/.installed

system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ] || [ -z "$$(apt-cache policy fillets-ng-data-cs 2>/dev/null | grep Candidate)" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

# Removes pipeline outputs and tool state (not the venv, not downloaded Debian packages).
clean-state:
	rm -rf data/corpus data/mix data/features logs .snakemake
