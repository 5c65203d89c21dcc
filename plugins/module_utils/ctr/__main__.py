# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entry point of ``python3 -m ctr`` (with plugins/module_utils on ``sys.path``)."""

from __future__ import annotations

from .cli import main

if __name__ == '__main__':
    raise SystemExit(main())
