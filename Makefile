# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Development loop for the daemonless.ctr collection. On a fresh Debian 12 machine, as root:
#   make demo    install what is needed, then run playbooks/demo.yml against this host
#   make test    install what is needed, then unit tests, ansible-test sanity, integration tests
# Each step installs only what is missing; see `make help`.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.NOTPARALLEL:
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
VPY := $(CURDIR)/$(VENV)/bin/python
BUILD := $(CURDIR)/build
COLLECTION := $(BUILD)/ansible_collections/daemonless/ctr
PLAYBOOK ?= playbooks/demo.yml
PYTEST_ARGS ?= -q
SANITY_ARGS ?=

export DEBIAN_FRONTEND := noninteractive

.PHONY: help deps podman-check venv collection unit unit-oldest sanity integration test demo clean

help:
	@echo 'make deps         Debian packages (apt-get, as root) and podman settings for this host'
	@echo 'make venv         .venv with requirements.txt (rebuilt when requirements.txt changes)'
	@echo 'make collection   copy the repo to build/ansible_collections/daemonless/ctr'
	@echo 'make unit         pytest tests/unit              (PYTEST_ARGS=$(PYTEST_ARGS))'
	@echo 'make unit-oldest  the engine unit tests on Python 3.9 (the oldest a managed host may have)'
	@echo 'make sanity       ansible-test sanity, Python 3.9..3.13 as found (SANITY_ARGS=...)'
	@echo 'make integration  pytest tests/integration, as root'
	@echo 'make test         deps venv unit unit-oldest sanity integration, stopping at the first failure'
	@echo 'make demo         deps venv collection, then ansible-playbook $(PLAYBOOK)'
	@echo 'make clean        remove build/ and tests/output/ (keeps .venv)'

deps:
	scripts/deps.sh

podman-check:
	scripts/deps.sh --check-podman

venv: $(VENV)/.requirements-stamp

$(VENV)/.requirements-stamp: requirements.txt
	scripts/venv.sh $(PYTHON) $(VENV) requirements.txt

collection:
	@command -v rsync >/dev/null || { echo 'rsync is missing: run make deps' >&2; exit 1; }
	mkdir -p $(COLLECTION)
	rsync -a --delete \
	    --exclude=/.git --exclude=/.venv --exclude=/.venv-py39 --exclude=/build --exclude=/tests/output \
	    --exclude=/bench/data --exclude=__pycache__ --exclude='*.pyc' --exclude=.pytest_cache \
	    ./ $(COLLECTION)/
	@# ansible-test lists a collection's files with git when it finds a .git in or above the
	@# collection; above it is this repo, where build/ is ignored. A repo of its own (never
	@# committed to) makes it see the copied files, minus what .gitignore excludes.
	[ -d $(COLLECTION)/.git ] || git -C $(COLLECTION) init -q

unit: venv
	scripts/pytest.sh $(VPY) tests/unit $(PYTEST_ARGS)

unit-oldest:
	scripts/unit-oldest.sh $(PYTEST_ARGS)

sanity: venv collection
	scripts/sanity.sh $(VENV) $(COLLECTION) $(SANITY_ARGS)

integration: venv
	@[ "$$(id -u)" -eq 0 ] || { echo 'integration tests need root' >&2; exit 1; }
	scripts/pytest.sh $(VPY) tests/integration $(PYTEST_ARGS)

test: deps venv unit unit-oldest sanity integration

demo: deps venv collection
	@[ -f $(PLAYBOOK) ] || { echo '$(PLAYBOOK) does not exist yet' >&2; exit 1; }
	ANSIBLE_COLLECTIONS_PATH=$(BUILD) ANSIBLE_PYTHON_INTERPRETER=$(VPY) \
	    $(VENV)/bin/ansible-playbook -i localhost, -c local $(PLAYBOOK)

clean:
	rm -rf $(BUILD) tests/output
