#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/pytest.sh PYTHON SUITE_DIR [pytest options...]
#
# Run one pytest suite. A suite with no test file yet (not written so far) is reported and passes
# without running pytest; once it has test files, every pytest failure counts, including exit 5
# (test files that yield no test).
set -euo pipefail

python=$1
suite=$2
shift 2

if [ -z "$(find "$suite" \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit 2>/dev/null)" ]; then
    echo "pytest: $suite has no test files yet; nothing to run"
    exit 0
fi
exec "$python" -m pytest "$suite" "$@"
