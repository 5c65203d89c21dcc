#!/usr/bin/python
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ctr_image_info
short_description: Inspect OCI images in a daemonless store
version_added: 0.1.0
description:
  - Return images of the store on the managed host in Docker's inspect shape
    (C(Id), C(RepoTags), C(RepoDigests), C(Created), C(Size), C(Architecture), C(Os), C(Config),
    C(RootFS.Layers), C(History)).
extends_documentation_fragment:
  - daemonless.ctr.ctr
attributes:
  check_mode:
    description: Reads only; runs in check mode too.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: N/A
options:
  name:
    description:
      - Image references or IDs to inspect. Names that are not in the store are left out of the result.
      - When omitted, every image of the store is returned.
    type: list
    elements: str
author:
  - daemonless.ctr contributors (@daemonless)
seealso:
  - module: daemonless.ctr.ctr_image
'''

EXAMPLES = r'''
- name: Inspect one image
  daemonless.ctr.ctr_image_info:
    name: busybox
  register: result

- name: Show its layers
  ansible.builtin.debug:
    var: result.images[0].RootFS.Layers

- name: List every image
  daemonless.ctr.ctr_image_info:
  register: all_images
'''

RETURN = r'''
images:
  description: The images found, in Docker's inspect shape.
  returned: always
  type: list
  elements: dict
  sample:
    - Id: sha256:6f1c1c6f5b9d6d0ad5e8d7e1f4c0b9a3a9f7e2b5a8c1d6e4f0a2b3c4d5e6f7a8
      RepoTags: [docker.io/library/busybox:latest]
      Architecture: amd64
      Os: linux
      RootFS:
        Type: layers
        Layers: [sha256:3d2b5a...]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.daemonless.ctr.plugins.module_utils.ansible_glue import argument_spec, run
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.images import ImageStore


def work(module):
    images = ImageStore(module.params['root'])
    names = module.params['name']
    if names is None:
        found = images.list()
    else:
        found = []
        for name in names:
            image = images.find(name)
            if image is not None and image.id not in [i.id for i in found]:
                found.append(image)
    return dict(changed=False, images=[i.inspect(images.store) for i in found])


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(name=dict(type='list', elements='str')),
        supports_check_mode=True,
    )
    run(module, lambda: work(module))


if __name__ == '__main__':
    main()
