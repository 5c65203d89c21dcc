#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/pytest.sh PYTHON SUITE_DIR [pytest options...]
#
# Run one pytest suite. pytest exits 5 when it collects no test; that passes only while SUITE_DIR
# holds no test file at all (a suite not written yet). Test files that yield no test still fail.
set -euo pipefail

python=$1
suite=$2
shift 2

rc=0
"$python" -m pytest "$suite" "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    if [ -n "$(find "$suite" \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit 2>/dev/null)" ]; then
        echo "pytest: $suite has test files but pytest collected no test" >&2
        exit 5
    fi
    echo "pytest: $suite has no tests yet"
    exit 0
fi
exit "$rc"
