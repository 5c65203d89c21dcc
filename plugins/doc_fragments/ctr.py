# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options every daemonless.ctr module shares."""

    DOCUMENTATION = r'''
options:
  root:
    description:
      - The store root on the managed host; holds the OCI image layout in C(<root>/oci),
        unpacked layers, containers, volumes and networks.
      - When not given, the environment variable E(CTR_ROOT) of the module's process is used,
        then C(/var/lib/ctr).
      - Set it for a whole play with C(module_defaults) and the action group C(daemonless.ctr.ctr).
    type: path
    default: /var/lib/ctr
notes:
  - The engine needs only Python 3.9 or later and the Linux kernel on the managed host; no container
    daemon, Docker, Podman or runtime binary is used. Bridge networks also need the C(pyroute2) Python
    package and nftables (the C(nft) command).
  - Several tasks (or Ansible forks) may use one store at once; the store is locked where needed.
'''
