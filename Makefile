# The two commands of README.md: `make run` (the main job) and `make test` (the test suite).
# Both set a fresh machine up first: Debian packages via apt-get, then a venv with the pinned stack.

VENV := .venv
PYTHON ?= python3
# espeak-ng, flite, fortunes: synthetic voices and their sentences; dpkg-deb and apt-get
# download the Debian speech packages (fetched by the corpus stage, never installed).
APT_PACKAGES := espeak-ng flite fortunes
# chromium, chromium-driver: the headless browser tests/test_mlflow_ui.py opens the MLflow UI in
# (the tests only: `make run` does not install a browser).
TEST_APT_PACKAGES := chromium chromium-driver
# What `system-packages` installs; `test` widens it (a target-specific value reaches its prerequisites).
APT_NEEDED = $(APT_PACKAGES)
PORT ?= 5000
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: run test ui setup system-packages clean-state

run: setup
	snakemake --cores all

test: APT_NEEDED = $(APT_PACKAGES) $(TEST_APT_PACKAGES)
test: setup
	pytest

# The MLflow UI on the project's store (params.yaml: tracking) until Ctrl-C; `make ui PORT=5001` for another port.
ui: $(VENV)/.installed
	$(VENV)/bin/dpcl ui --port $(PORT)

setup: system-packages $(VENV)/.installed

system-packages:
	@missing=$$(for p in $(APT_NEEDED); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
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
