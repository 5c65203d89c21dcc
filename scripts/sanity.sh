#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/sanity.sh VENV COLLECTION_DIR [ansible-test sanity options...]
#
# Run `ansible-test sanity --venv --requirements` in COLLECTION_DIR (a copy of the repository at
# .../ansible_collections/daemonless/ctr, made by `make collection`) on every Python 3.9 .. 3.13
# found on this machine; ansible-test skips the versions it cannot find, with a warning.
#
# Two things make that work offline from everything but PyPI:
# - ansible-test puts pip into each of its venvs with a bootstrap script that it downloads from a
#   host we cannot reach. It looks for that script in ~/.ansible/test/cache first, so we leave a
#   stand-in there that installs the same pip release from PyPI's wheel.
# - pyenv's shims answer `python3.X` for every X and then fail for all but the selected version,
#   which ansible-test takes for a broken interpreter. We hide the shims and put real interpreters
#   in a directory of symlinks at the front of PATH.
set -euo pipefail

venv=$(cd "$1" && pwd)
collection=$(cd "$2" && pwd)
shift 2

build=$(cd "$collection/../../.." && pwd)
pybin=$build/pybin

log() { printf 'sanity: %s\n' "$*"; }

# PATH without pyenv's shims.
clean_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v -e '/\.pyenv/shims$' -e '/pyenv-virtualenv/shims$' | paste -sd: -)
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
pyenv_root=${PYENV_ROOT:-$home/.pyenv}
export HOME=$home  # ansible-test refuses to run without it

find_python() {
    local version=$1 candidate
    candidate=$(find "$pyenv_root/versions" -maxdepth 3 -path "*/versions/$version.*/bin/python$version" 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$candidate" ]; then
        candidate=$(PATH=$clean_path command -v "python$version" || true)
    fi
    if [ -n "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
        printf '%s\n' "$candidate"
    fi
}

rm -rf "$pybin"
mkdir -p "$pybin"
found=()
for version in 3.9 3.10 3.11 3.12 3.13; do
    python=$(find_python "$version")
    if [ -n "$python" ]; then
        ln -s "$python" "$pybin/python$version"
        found+=("$version")
    fi
done
log "Pythons found: ${found[*]:-none} (controller: $("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'))"

install_pip_bootstrap() {
    local pip_version cache script wheel
    pip_version=$("$venv/bin/python" - <<'EOF'
import os
import re

import ansible_test

path = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
with open(path, encoding='utf-8') as handle:
    print(re.search(r"pip='([0-9.]+)'", handle.read()).group(1))
EOF
)
    cache=$("$venv/bin/python" -c 'import os; print(os.path.expanduser("~/.ansible/test/cache"))')
    script=$cache/get_pip_${pip_version//./_}.py
    wheel=pip-$pip_version-py3-none-any.whl
    if [ -f "$script" ] && { ! grep -q 'daemonless.ctr' "$script" || [ -f "$cache/$wheel" ]; }; then
        return
    fi
    mkdir -p "$cache"
    log "fetching pip $pip_version from PyPI for ansible-test's venvs"
    "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
        --dest "$cache" "pip==$pip_version"
    cat >"$script.tmp" <<EOF
# Stand-in for ansible-test's pip bootstrap script, written by daemonless.ctr scripts/sanity.sh:
# installs pip from the wheel beside this file, with the arguments get-pip.py takes.
import os
import runpy
import sys

WHEEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), '$wheel')
ARGS = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
sys.path.insert(0, WHEEL)
sys.argv = ['pip', 'install', '--upgrade', '--force-reinstall'] + ARGS
runpy.run_module('pip', run_name='__main__', alter_sys=True)
EOF
    mv "$script.tmp" "$script"
}

install_pip_bootstrap

cd "$collection"
export PATH="$pybin:$venv/bin:$clean_path"
exec "$venv/bin/ansible-test" sanity --venv --requirements "$@"
