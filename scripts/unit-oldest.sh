#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/unit-oldest.sh [pytest options...]
#
# The engine runs on managed hosts with Python 3.9 or later: run its unit tests (those that need no
# Ansible) on the oldest supported Python found here, in a small venv of its own (.venv-py39).
# ansible-test sanity's compile and import tests cover 3.9..3.13 as well; this runs the behaviour.
set -euo pipefail

version=3.9
venv=.venv-py$(echo $version | tr -d .)
pyenv_root=${PYENV_ROOT:-${HOME:-/root}/.pyenv}

python=$(find "$pyenv_root/versions" -maxdepth 3 -path "*/versions/$version.*/bin/python$version" 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$python" ]; then
    clean_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/shims$' | paste -sd: -)
    python=$(PATH=$clean_path command -v "python$version" || true)
fi
if [ -z "$python" ] || ! "$python" -c 'import sys' >/dev/null 2>&1; then
    echo "unit-oldest: no Python $version on this machine; the engine's unit tests ran on $(.venv/bin/python -V 2>&1) only"
    exit 0
fi
if [ ! -x "$venv/bin/python" ] || [ "$venv/.stamp" -ot "$0" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check 'pytest==8.4.2'
    touch "$venv/.stamp"
fi
# the module tests need ansible-core, which no longer runs on 3.9 as a controller: they run in `make unit`
exec "$venv/bin/python" -m pytest tests/unit --ignore=tests/unit/test_module_ctr_image.py "$@"
