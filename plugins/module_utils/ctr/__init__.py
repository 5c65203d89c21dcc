# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""daemonless.ctr's engine: images, layers and (later) containers, with no daemon and no Ansible import."""
