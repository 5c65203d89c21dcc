#!/usr/bin/python
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ctr_image
short_description: Manage OCI images in a daemonless store
version_added: 0.1.0
description:
  - Build an image from a Dockerfile, commit a container as an image, import a root filesystem as an
    image, load images from archives, tag, save and remove them, in the store of the managed host,
    with no container daemon.
  - The store is a plain OCI image layout (C(<root>/oci)) that skopeo and umoci can read.
  - Idempotent by content; importing the same tree again or saving an archive that already holds the
    same images reports no change.
extends_documentation_fragment:
  - daemonless.ctr.ctr
attributes:
  check_mode:
    description: Predicts whether the task would change anything, and changes nothing.
    support: full
  diff_mode:
    description: Returns the image the name pointed to before and after.
    support: full
options:
  name:
    description:
      - The image reference, for example C(busybox), C(registry.example.com/app:1.0), normalised as
        Docker does (C(busybox) is C(docker.io/library/busybox:latest)).
      - With O(state=absent) it may also be an image ID.
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the image exists under O(name) (importing or loading it as O(source) says).
      - V(absent) removes the name O(name); the image goes with its last name.
    type: str
    choices: [present, absent]
    default: present
  source:
    description:
      - Where the image comes from when O(state=present).
      - V(import) makes a one-layer image of O(import_path), like C(docker import).
      - V(load) loads the images of the archive O(load_path), like C(docker load).
      - V(build) builds it from a Dockerfile as O(build) says, like C(docker build). Steps whose
        inputs did not change come from the build cache, so an unchanged rebuild is quick and gives
        the same image; the task reports a change only when O(name) ends up on another image.
      - V(commit) makes an image of the container O(container), like C(docker commit). The new image is
        the container's image plus one layer holding the container's changes, without volume contents
        and without C(/etc/hosts), C(/etc/hostname) and C(/etc/resolv.conf).
      - V(local) expects the image to exist already (to tag or save it).
    type: str
    choices: [build, commit, import, load, local]
    default: local
  import_path:
    description:
      - A root filesystem to import, as a directory or a tar archive (plain, gzip, or zstd when the
        C(zstandard) Python module is on the host). Required with O(source=import).
    type: path
  build:
    description:
      - The build, with O(source=build).
    type: dict
    suboptions:
      path:
        description: The build context, a directory on the managed host.
        type: path
        required: true
      dockerfile:
        description:
          - The Dockerfile, relative to O(build.path) or absolute (it may lie outside the context).
          - Defaults to C(Dockerfile) in the context.
        type: str
      args:
        description: Build arguments (C(docker build --build-arg)).
        type: dict
        default: {}
      target:
        description: The stage to build (C(--target)); the last stage by default.
        type: str
      nocache:
        description: Run every step again instead of taking it from the build cache.
        type: bool
        default: false
      network:
        description: The network of RUN steps.
        type: str
        choices: [host, none, bridge]
        default: host
      labels:
        description: Labels added to the built image's config.
        type: dict
        default: {}
      created:
        description:
          - Seconds since the epoch used for every timestamp of the new steps, and the newest
            modification time a file in a new layer may have; the same Dockerfile and context then give
            the same image on any host. Defaults to the environment variable C(SOURCE_DATE_EPOCH) of the
            module, else the current time.
        type: int
  container:
    description:
      - The container to commit, by name or ID, with O(source=commit).
    type: str
  pause:
    description:
      - With O(source=commit), freeze a running container while its changes are read.
    type: bool
    default: true
  comment:
    description: With O(source=commit), the history comment of the new layer (C(docker commit --message)).
    type: str
  changes:
    description:
      - Dockerfile metadata instructions applied to the imported or committed image's config, like
        C(docker import --change) and C(docker commit --change). Allowed are C(CMD), C(ENTRYPOINT), C(ENV), C(EXPOSE), C(WORKDIR),
        C(USER), C(LABEL), C(VOLUME), C(STOPSIGNAL) and C(ONBUILD).
    type: list
    elements: str
    default: []
  load_path:
    description:
      - A docker-archive (as written by C(docker save) or C(podman save)) or an oci-archive to load.
        Required with O(source=load).
      - When the archive holds one image without a name, it is given O(name).
    type: path
  archive_path:
    description:
      - Save the image to this file after making sure it is present. The file is rewritten only
        when its content differs from what would be written.
    type: path
  archive_format:
    description: The format of O(archive_path).
    type: str
    choices: [docker-archive, oci-archive]
    default: docker-archive
  repository:
    description:
      - Tag the image under this name too (a full reference, or a repository to which the tag of
        O(name) is added when it has none).
    type: str
  force:
    description:
      - With O(state=absent), remove the whole image with every name it has, even when O(name) is one of
        several names or an ID.
    type: bool
    default: false
notes:
  - A build runs RUN steps in containers of this collection's runtime, on the managed host, as root.
  - In check mode a build walks its steps through the build cache and runs none; when a step is not
    cached the task predicts a change.
  - In check mode nothing is imported or loaded, so a later task of the same play that expects the image
    (O(source=local)) fails as it would on a host without it; put O(repository) and O(archive_path) on the
    importing task itself to have them predicted too.
author:
  - daemonless.ctr contributors (@daemonless)
seealso:
  - module: daemonless.ctr.ctr_image_info
'''

EXAMPLES = r'''
- name: Build an image from a Dockerfile in /srv/app
  daemonless.ctr.ctr_image:
    name: app:1.0
    source: build
    build:
      path: /srv/app
      args:
        VERSION: "1.0"

- name: Commit a container's changes as a new image
  daemonless.ctr.ctr_image:
    name: app:1.1
    source: commit
    container: web
    changes:
      - CMD ["httpd", "-f", "-p", "80"]

- name: Import a busybox root filesystem as an image
  daemonless.ctr.ctr_image:
    name: busybox:latest
    source: import
    import_path: /srv/rootfs/busybox
    changes:
      - CMD ["sh"]
      - ENV PATH=/bin

- name: Load images that podman save wrote
  daemonless.ctr.ctr_image:
    name: localhost/app:1.0
    source: load
    load_path: /tmp/app.tar

- name: Tag an image under a registry name and save it as an OCI archive
  daemonless.ctr.ctr_image:
    name: busybox:latest
    repository: registry.example.com/tools/busybox:1.36
    archive_path: /tmp/busybox-oci.tar
    archive_format: oci-archive

- name: Remove a name (and the image when it was the last)
  daemonless.ctr.ctr_image:
    name: busybox:latest
    state: absent

- name: Use one store root for every task of the play
  module_defaults:
    group/daemonless.ctr.ctr:
      root: /srv/ctr
  block:
    - daemonless.ctr.ctr_image:
        name: busybox
'''

RETURN = r'''
image:
  description:
    - The image in Docker's inspect shape after the task; empty when it was removed, or when check mode
      predicts a new image that does not exist yet.
  returned: always
  type: dict
  sample:
    Id: sha256:6f1c1c6f5b9d6d0ad5e8d7e1f4c0b9a3a9f7e2b5a8c1d6e4f0a2b3c4d5e6f7a8
    RepoTags: [docker.io/library/busybox:latest]
    RootFS:
      Type: layers
      Layers: [sha256:3d2b5a...]
    Config:
      Cmd: [sh]
stdout_lines:
  description: The build's output, line by line (O(source=build)).
  returned: when O(source=build)
  type: list
  elements: str
  sample: ['Step 1/3 : FROM busybox', ' ---> 3d2b5a8c1d6e', 'Step 2/3 : WORKDIR /app', ' ---> Using cache']
actions:
  description: What the task did, in order.
  returned: always
  type: list
  elements: str
  sample: [imported /srv/rootfs/busybox as docker.io/library/busybox:latest (6f1c1c6f5b9d)]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.daemonless.ctr.plugins.module_utils.ansible_glue import argument_spec, diff, run
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr import archives
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.errors import InvalidArgument, NotFound
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.images import ImageStore
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.refs import Reference


def _summary(images, name):
    image = images.find(name)
    if image is None:
        return None, {}
    return image, {'id': image.id, 'names': sorted(image.names), 'layers': image.diff_ids}


def _target_name(name, repository):
    """``repository`` as a full name; a bare repository takes ``name``'s tag."""
    try:
        ref = Reference.parse(repository, default_tag=False)
    except InvalidArgument as exc:
        raise InvalidArgument('repository: %s' % exc.msg)
    if ref.tag or ref.digest:
        return str(ref)
    return str(ref.with_tag(Reference.parse(name).tag or 'latest'))


def work(module):
    p = module.params
    check = module.check_mode
    images = ImageStore(p['root'])
    try:
        name = str(Reference.parse(p['name'])) if p['state'] == 'present' else p['name']
        images.find(name)
    except InvalidArgument as exc:
        raise InvalidArgument('name: %s' % exc.msg)
    before_image, before = _summary(images, name)
    actions, changed, predicted_new, predicted_id = [], False, False, '(new image)'

    if p['state'] == 'absent':
        outcome = images.remove(name, force=p['force'], check=check)
        after = {} if check and outcome.changed else _summary(images, name)[1]
        return dict(changed=outcome.changed, actions=outcome.actions, image={},
                    diff=diff(before, after))

    log = None
    if p['source'] == 'build':
        outcome, log = _build(images, p, name, check)
        changed, actions = outcome.changed, outcome.actions
        predicted_new = check and outcome.image is None and outcome.changed
    elif p['source'] == 'commit':
        if not p['container']:
            raise InvalidArgument('container is required when source is commit')
        from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.runtime import commit
        from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.runtime.lifecycle import Runtime
        outcome = commit.commit(Runtime(p['root']), p['container'], name, changes=p['changes'], pause=p['pause'],
                                message=p['comment'], check=check)
        changed, actions = outcome.changed, outcome.actions
        predicted_new = check and outcome.changed
    elif p['source'] == 'import':
        if not p['import_path']:
            raise InvalidArgument('import_path is required when source is import')
        outcome = images.import_rootfs(p['import_path'], name, changes=p['changes'], check=check)
        changed, actions = outcome.changed, outcome.actions
        predicted_new = check and outcome.changed
    elif p['source'] == 'load':
        if not p['load_path']:
            raise InvalidArgument('load_path is required when source is load')
        outcome = archives.load(images, p['load_path'], name=name, check=check)
        changed, actions = outcome.changed, outcome.actions
        predicted_new = check and outcome.changed
        if predicted_new and not outcome.new:
            # only a name to add to an image already stored: its ID is known
            predicted_id = next((i.id for i, e in outcome.renames if name in e.names), predicted_id)
    elif before_image is None:
        raise NotFound('image %s is not in the store at %s; use source import or load to add it'
                       % (name, images.store.root))

    if p['repository']:
        target = _target_name(name, p['repository'])
        if predicted_new:
            changed = True
            actions.append('tag %s as %s' % (name, target))
        else:
            outcome = images.tag(name, target, check=check)
            changed = changed or outcome.changed
            actions.extend(outcome.actions)

    if p['archive_path']:
        if predicted_new:
            changed = True
            actions.append('save %s to %s' % (name, p['archive_path']))
        elif archives.save(images, [name], p['archive_path'], p['archive_format'], check=check):
            changed = True
            actions.append('saved %s to %s as %s' % (name, p['archive_path'], p['archive_format']))

    after_image, after = _summary(images, name)
    if predicted_new:
        after = {'names': [name], 'id': predicted_id}
    result = dict(changed=changed, actions=actions,
                  image=after_image.inspect(images.store) if after_image and not predicted_new else {},
                  diff=diff(before, after))
    if log is not None:
        result['stdout_lines'] = log
    return result


def _build(images, p, name, check):
    """``source: build``: (Outcome, log lines)."""
    from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.build import Builder, BuildOptions
    from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.images import Outcome
    b = p['build']
    if not b:
        raise InvalidArgument('build is required when source is build')
    options = BuildOptions(path=b['path'], dockerfile=b['dockerfile'], args={k: str(v) for k, v in (b['args'] or {}).items()},
                           target=b['target'] or '', nocache=b['nocache'], network=b['network'],
                           labels=dict(b['labels'] or {}), created=b['created'])
    builder = Builder(images.store.root, options)     # the runtime is loaded when a RUN step runs
    result = builder.build([name], check=check)
    if not result.complete:
        return Outcome(True, None, None, ['build %s (a step is not cached)' % name]), result.log
    actions = []
    if result.changed:
        actions.append('built %s (%s): %d steps, %d from the cache'
                       % (name, result.image.short_id, result.steps, result.cached))
    return Outcome(result.changed, result.image, None, actions), result.log


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            source=dict(type='str', default='local', choices=['build', 'commit', 'import', 'load', 'local']),
            build=dict(type='dict', options=dict(
                path=dict(type='path', required=True),
                dockerfile=dict(type='str'),
                args=dict(type='dict', default={}),
                target=dict(type='str'),
                nocache=dict(type='bool', default=False),
                network=dict(type='str', default='host', choices=['host', 'none', 'bridge']),
                labels=dict(type='dict', default={}),
                created=dict(type='int'),
            )),
            container=dict(type='str'),
            pause=dict(type='bool', default=True),
            comment=dict(type='str'),
            import_path=dict(type='path'),
            changes=dict(type='list', elements='str', default=[]),
            load_path=dict(type='path'),
            archive_path=dict(type='path'),
            archive_format=dict(type='str', default='docker-archive', choices=['docker-archive', 'oci-archive']),
            repository=dict(type='str'),
            force=dict(type='bool', default=False),
        ),
        required_if=[('source', 'import', ['import_path']), ('source', 'load', ['load_path']),
                     ('source', 'build', ['build']), ('source', 'commit', ['container'])],
        supports_check_mode=True,
    )
    run(module, lambda: work(module))


if __name__ == '__main__':
    main()
