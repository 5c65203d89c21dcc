#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/venv.sh PYTHON VENV_DIR REQUIREMENTS
# (Re)create VENV_DIR from PYTHON and install REQUIREMENTS (pinned) into it. The Makefile calls this
# only when REQUIREMENTS is newer than the venv's stamp; a failed install leaves no stamp behind.
set -euo pipefail

python=$1
venv=$2
requirements=$3

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "venv: $python is older than Python 3.11 (ansible-core 2.18 needs 3.11+); run: make venv PYTHON=python3.11" >&2
    exit 1
fi

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
"$venv/bin/python" -m pip check
touch "$venv/.requirements-stamp"
echo "venv: $venv ready ($("$venv/bin/python" --version), $("$venv/bin/ansible" --version | head -1))"
