# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dockerfile builds: stages, one history entry per instruction, a content-addressed step cache.

A build walks the stages the target needs, in order. Each instruction is one
step: WORKDIR, COPY, ADD and RUN add a filesystem layer, the others an
``empty_layer`` history entry, as Docker's classic builder does. After every
step the stage's state is an (unnamed) image: its config and manifest blobs
go to the store, and a cache record (:mod:`.buildcache`) points at the manifest: a gc root.

The key of a step is the sha256 of its parent's key (the base image's ID for
the first), the instruction after substitution (with the build args a RUN
sees, as Docker's ``|N A=b`` prefix shows), and for COPY/ADD the content of the
sources (bytes, names, modes, owners; never mtimes). A hit reuses the step's
image and prints ``Using cache``; an unchanged rebuild is thus the same image.

Timestamps: ``created`` (or ``SOURCE_DATE_EPOCH``) fixes every time in the
configs and clamps every mtime in new layers, so the same Dockerfile and
context give the same digests on any host.

RUN runs in a container of :mod:`.runtime` made from the step's image; its
upper dir becomes the layer. WORKDIR, COPY and ADD work on an overlay in a
child process (:mod:`.buildfs`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
import types

from . import buildcache, buildsteps
from . import mediatypes as mt
from .errors import CtrError, InvalidArgument
from .images import host_platform, source_date_epoch
from .records import field, record
from .store import Descriptor, sha256
from .timestamps import MAX_SECONDS, rfc3339

NETWORKS = ('host', 'none', 'bridge')
DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
CACHE_VERSION = 3       # part of every step's key: raised when what a step makes of the same inputs changes
BUILD_LABEL = 'org.daemonless.ctr.build'


@record
class BuildOptions:
    """What ``docker build`` takes: ``path`` is the context directory."""

    path: str
    dockerfile: str | None = None
    args: dict = field(default_factory=dict)
    target: str = ''
    nocache: bool = False
    network: str = 'host'
    labels: dict = field(default_factory=dict)
    created: int | None = None           # seconds since the epoch for every timestamp (default SOURCE_DATE_EPOCH)


@record
class BuildResult:
    image: object                           # images.Image (None in check mode when a step would run)
    changed: bool
    log: list[str]
    steps: int = 0
    cached: int = 0
    complete: bool = True                   # False: check mode stopped at the first step that would run


@record
class StageState:
    """A stage's progress: the image so far and what the next step needs to know."""

    index: int
    key: str
    config: dict                            # the whole OCI image config
    layers: list                            # layer Descriptors
    manifest: str = ''                      # the manifest of this state ('' before it is stored)
    config_digest: str = ''                 # its image ID
    args: dict = field(default_factory=dict)    # ARGs declared in the stage -> value (None: declared, unset)
    cmd_set: bool = False                   # CMD given in this stage (ENTRYPOINT then keeps it)

    @property
    def body(self):
        return self.config.setdefault('config', {})

    @property
    def diff_ids(self):
        return list(self.config['rootfs']['diff_ids'])


class _Stop(Exception):
    """Check mode met a step that would have to run."""


class Builder:
    """One build; ``emit`` receives every output line as it comes."""

    def __init__(self, runtime, options, emit=None):
        """``runtime``: a runtime.lifecycle.Runtime, or the store root (None: the default), for which the
        runtime is made only when a RUN step runs: a build from the cache never loads it."""
        from . import buildcontext, dockerfile_parse
        if options.network not in NETWORKS:
            raise InvalidArgument('build network "%s" is not one of %s' % (options.network, ', '.join(NETWORKS)))
        for option, value in (('args', options.args), ('labels', options.labels)):
            if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
                raise InvalidArgument('build %s must be a mapping of names to strings' % option)
        if runtime is None or isinstance(runtime, str):
            from .images import ImageStore
            self._runtime, self.images = None, ImageStore(runtime)
        else:
            self._runtime, self.images = runtime, runtime.images
        self.store = self.images.store
        self.opts = options
        self._emit = emit
        self.log = []
        self.context = buildcontext.BuildContext(options.path, options.dockerfile, hash_cache=os.path.join(
            self.store.root, 'build', 'context-hashes.json'))      # (dev, inode, size, times) -> sha256
        self.shown_path = options.dockerfile or 'Dockerfile'
        self.dockerfile = dockerfile_parse.parse(self.context.dockerfile_text, self.shown_path)
        epoch = options.created if options.created is not None else source_date_epoch()
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0
                                  or epoch > MAX_SECONDS):
            raise InvalidArgument('created "%s" is not a whole number of seconds from 0 to %d (the end of the year 9999)'
                                  % (epoch, MAX_SECONDS))
        self.epoch = epoch
        self.meta_args = {}
        self.used_args = set()
        self.stages = {}            # stage index -> final StageState
        self.check = False
        self.steps = self.cached = 0
        self.downloads = []         # scratch areas of the current step's downloads
        self._swept = False

    # -- output and time ------------------------------------------------------------------------

    def emit(self, line):
        self.log.append(line)
        if self._emit is not None:
            self._emit(line)

    def now(self):
        return rfc3339(self.epoch if self.epoch is not None else time.time())

    # -- the build --------------------------------------------------------------------------------

    def build(self, names=(), check=False):
        """Build the target stage and point ``names`` at it; returns a :class:`BuildResult`."""
        from . import dockerfile_parse
        self.check = check
        if check:
            self.context.hash_cache = None      # check mode writes nothing, not even the hash cache
        self._meta_args()
        target = self._target()
        needed = self._needed(target.index)
        total = sum(1 + len(self.dockerfile.stages[i].commands) for i in needed)
        counter = [0, total]
        if not check:
            self.store.init()
            self.store.sweep_temp()             # the work areas of killed builds
        try:
            # gc waits for the build: its steps are not roots yet (check mode writes nothing, not even a lock)
            with contextlib.nullcontext() if check else self.store.writing():
                for index in needed:
                    self.stages[index] = self._stage(self.dockerfile.stages[index], counter)
                final = self.stages[target.index]
                self._final_labels(final)
        except _Stop:
            return BuildResult(None, True, self.log, self.steps, self.cached, complete=False)
        except dockerfile_parse.DockerfileError:
            raise
        unused = sorted(set(self.opts.args) - self.used_args)
        if unused:
            self.emit('[Warning] One or more build args were not consumed: %s' % ', '.join(unused))
        image = self.images.by_manifest(final.manifest)
        changed = self.images.set_names(image.manifest, list(names), check=check)     # no name: an unnamed entry
        image.names = list(names)
        self.emit('Successfully built %s' % image.short_id)
        for name in names:
            self.emit('Successfully tagged %s' % name)
        if changed and not check:
            self.store.gc()
        return BuildResult(image, changed, self.log, self.steps, self.cached)

    @property
    def runtime(self):
        """The container runtime, made (and rid of killed builds' RUN containers) when a RUN first needs it."""
        if self._runtime is None:
            from .runtime.lifecycle import Runtime
            self._runtime = Runtime(self.store.root)
        if not self._swept:
            self._swept = True
            self._sweep_containers()
        return self._runtime

    def _sweep_containers(self):
        """Remove the RUN containers of builds that were killed (done, or never started, for 10 minutes)."""
        from .timestamps import parse_rfc3339
        limit = time.time() - 600
        for container in self._runtime.list():
            if (container.Config.get('Labels') or {}).get(BUILD_LABEL) != 'run' or container.State.Running \
                    or container.State.MonitorPid:
                continue
            stamp = container.State.FinishedAt if container.State.Status != 'created' else container.Created
            try:
                old = parse_rfc3339(stamp) < limit
            except ValueError:
                old = True
            if old:
                try:
                    self._runtime.remove(container.Id, force=True)
                except CtrError:
                    pass

    def _meta_args(self):
        from . import dockerfile_parse as dp
        for cmd in self.dockerfile.meta_args:
            for name, default in self._wrap(cmd, dp.parse_arg, cmd.args, self.dockerfile.escape):
                self.meta_args[name] = self.arg_value(cmd, name, default, self.meta_args)

    def _target(self):
        stages = self.dockerfile.stages
        if not self.opts.target:
            return stages[-1]
        try:
            return self.dockerfile.stage(self.opts.target)
        except CtrError:
            raise InvalidArgument('target stage "%s" is not in %s (stages: %s)' % (
                self.opts.target, self.shown_path,
                ', '.join(s.name or str(s.index) for s in stages))) from None

    def _needed(self, index):
        """The stages ``index`` depends on (FROM a stage, COPY --from), itself last, in file order."""
        wanted, todo = set(), [index]
        while todo:
            i = todo.pop()
            if i in wanted:
                continue
            wanted.add(i)
            stage = self.dockerfile.stages[i]
            base = self._stage_ref(self._expand(stage.base, self.meta_args), i)
            if base is not None:
                todo.append(base)
            args = dict(self.meta_args)
            for cmd in stage.commands:
                if cmd.keyword == 'ARG':       # COPY --from=$X sees the ARGs before it (ENV does not count)
                    args.update(self._stage_args(cmd, args))
                src = cmd.flag('from') if cmd.keyword == 'COPY' else None
                if src:
                    ref = self._stage_ref(self._wrap(cmd, self._expand, src, args), i)
                    if ref is not None:
                        todo.append(ref)
        return sorted(wanted)

    def _stage_args(self, cmd, args):
        from . import dockerfile_parse as dp
        return {name: self.arg_value(cmd, name, default, args)
                for name, default in self._wrap(cmd, dp.parse_arg, cmd.args, self.dockerfile.escape)}

    def _expand(self, text, args):
        from . import dockerfile_parse as dp
        return dp.expand_word(text, self._visible(args), self.dockerfile.escape)

    def _stage_ref(self, text, before):
        """The index of an earlier stage ``text`` names (name or number), or None (an image)."""
        text = (text or '').lower()
        for stage in self.dockerfile.stages[:before]:
            if (stage.name and stage.name == text) or text == str(stage.index):
                return stage.index
        return None

    @staticmethod
    def _visible(args):
        return {k: v for k, v in args.items() if v is not None}

    # -- stages -------------------------------------------------------------------------------------

    def _stage(self, stage, counter):
        counter[0] += 1
        self.emit('Step %d/%d : FROM %s%s' % (counter[0], counter[1], stage.base,
                                              ' AS %s' % stage.name if stage.name else ''))
        state = self._base(stage)
        self.emit(' ---> %s' % (state.config_digest[7:19] if state.manifest else 'scratch'))
        commands = list(stage.commands)
        triggers = state.body.pop('OnBuild', None) or []
        if triggers:
            commands = self._triggers(stage, triggers) + commands
            counter[1] += len(triggers)
        for cmd in commands:
            counter[0] += 1
            self.emit('Step %d/%d : %s' % (counter[0], counter[1], cmd.original))
            buildsteps.run(self, state, cmd)
        if not state.manifest:                 # FROM scratch and nothing else: still an image
            self._settle(state, state.key)
        return state

    def _base(self, stage):
        base_text = self._wrap(types.SimpleNamespace(line=stage.line, keyword='FROM'), self._expand, stage.base,
                               self.meta_args)
        ref = self._stage_ref(base_text, stage.index)
        if ref is not None:
            parent = self.stages[ref]
            config = copy.deepcopy(parent.config)
            return StageState(stage.index, parent.key, config, list(parent.layers), parent.manifest,
                              parent.config_digest)
        if base_text.lower() == 'scratch':
            config = dict(host_platform())
            config.update({'config': {'Env': [DEFAULT_PATH]}, 'rootfs': {'type': 'layers', 'diff_ids': []},
                           'history': []})
            return StageState(stage.index, 'scratch', config, [])
        image = self.images.find(base_text)
        if image is None:
            from . import dockerfile_parse as dp
            raise dp.DockerfileError(self.shown_path, stage.line, 'FROM', 'image "%s" is not in the store at %s; '
                                     'load, import or build it first' % (base_text, self.store.root))
        config = copy.deepcopy(image.config)
        for key in ('container', 'container_config'):
            config.pop(key, None)
        config.setdefault('history', [])
        config.setdefault('rootfs', {'type': 'layers', 'diff_ids': []})
        body = config.setdefault('config', {})
        if not any(e.startswith('PATH=') for e in body.get('Env') or []):      # as Docker and BuildKit do
            body['Env'] = list(body.get('Env') or []) + [DEFAULT_PATH]
        return StageState(stage.index, image.id, config, image.layers, image.manifest.digest, image.id)

    def _triggers(self, stage, triggers):
        """The base image's ONBUILD instructions, run first (a child build, as Docker does)."""
        from . import dockerfile_parse as dp
        text = 'FROM scratch\n' + '\n'.join(triggers) + '\n'
        try:
            parsed = dp.parse(text, '%s (ONBUILD triggers of %s)' % (self.shown_path, stage.base))
        except CtrError as exc:
            raise dp.DockerfileError(self.shown_path, stage.line, 'FROM', 'the base image has a bad ONBUILD '
                                     'trigger: %s' % exc.msg) from None
        self.emit('# Executing %d build trigger%s' % (len(triggers), 's' if len(triggers) > 1 else ''))
        return list(parsed.stages[0].commands)

    def _final_labels(self, state):
        if not self.opts.labels:
            return
        body = state.body
        labels = dict(body.get('Labels') or {})
        labels.update({k: str(v) for k, v in self.opts.labels.items()})
        body['Labels'] = labels
        self._settle(state, _key(state.key, 'labels', sorted(labels.items())))

    def _settle(self, state, key):
        """Store ``state`` as it is under ``key`` (a step without a history entry), through the cache."""
        hit = self._cache_get(key)
        if hit is not None and hit.config == state.config:
            state.key, state.manifest, state.config_digest = key, hit.manifest.digest, hit.id
            return
        if self.check:
            raise _Stop()
        self._store_state(state, key)

    # -- steps (called by buildsteps) --------------------------------------------------------------

    def step(self, state, cmd, created_by, extra, action):
        """Run one step through the cache: ``action(state, config)`` changes a copy of the image config
        and returns the new layer's LayerDigests, or None."""
        key = _key(state.key, created_by, extra, self.epoch, CACHE_VERSION)     # another clamp is another image
        self.steps += 1
        hit = None if self.opts.nocache else self._cache_get(key)
        if hit is not None:
            self.cached += 1
            state.key, state.config, state.layers = key, copy.deepcopy(hit.config), hit.layers
            state.manifest, state.config_digest = hit.manifest.digest, hit.id
            self.emit(' ---> Using cache')
            self.emit(' ---> %s' % hit.short_id)
            return
        if self.check:
            raise _Stop()
        config = copy.deepcopy(state.config)
        config.setdefault('config', {})
        layer = action(state, config)
        created = self.now()
        config['created'] = created
        entry = {'created': created, 'created_by': created_by}
        if layer is None:
            entry['empty_layer'] = True
        else:
            config['rootfs']['diff_ids'] = state.diff_ids + [layer.diff_id]
            state.layers = list(state.layers) + [Descriptor(layer.media_type, layer.digest, layer.size)]
        config['history'] = list(config.get('history') or []) + [entry]
        state.config = config
        self._store_state(state, key)
        self.emit(' ---> %s' % state.config_digest[7:19])

    def _store_state(self, state, key):
        from .fsutil import canonical_json
        config_bytes = canonical_json(state.config)
        config_digest = self.store.put_bytes(config_bytes)
        manifest = {'schemaVersion': 2, 'mediaType': mt.OCI_MANIFEST,
                    'config': Descriptor(mt.OCI_CONFIG, config_digest, len(config_bytes)).to_json(),
                    'layers': [d.to_json() for d in state.layers]}
        state.manifest = self.store.put_bytes(canonical_json(manifest))
        state.key = key
        state.config_digest = config_digest
        buildcache.record(self.store.root, key, state.manifest)

    def _cache_get(self, key):
        digest = buildcache.lookup(self.store.root, key)
        if digest is None:
            return None
        try:
            image = self.images.by_manifest(digest)
        except CtrError:
            return None
        if image is None or any(not self.store.has_blob(d.digest) for d in image.layers):
            return None
        return image

    def layer_dirs(self, state):
        """The stage's unpacked layers, lowest first (in check mode only when they are unpacked already)."""
        if not state.layers:
            return []
        if self.check:
            from .store import chain_ids
            dirs = [self.store.layer_dir(c) for c in chain_ids(state.diff_ids)]
            if not all(os.path.isdir(d) for d in dirs):
                raise _Stop()           # finding out would mean unpacking: predict a change
            return dirs
        return self.store.ensure_unpacked(state.layers, state.diff_ids)

    def stop_if_check(self):
        """Check mode cannot go on without doing something (a download): predict a change."""
        if self.check:
            raise _Stop()

    def state_image(self, state):
        if not state.manifest:
            self._store_state(state, state.key)
        return self.images.by_manifest(state.manifest)

    def expand_env(self, state):
        """What ``$VAR`` sees at this step: the stage's ARGs, then its ENV (ENV wins, as in Docker)."""
        env = self._visible(state.args)
        for item in state.body.get('Env') or []:
            name, dummy, value = item.partition('=')
            env[name] = value
        return env

    def arg_value(self, cmd, name, default, env):
        """An ARG's value: the build arg, else its default (substituted from ``env``), else the global
        (pre-FROM) one; None when it has none."""
        if name in self.opts.args:
            self.used_args.add(name)
            return str(self.opts.args[name])
        if default is not None:
            return self._wrap(cmd, self._expand, default, env)
        return self.meta_args.get(name)

    def _wrap(self, cmd, func, *args):
        """Call ``func``; any error of ours or of the kernel becomes a DockerfileError naming the file, the
        line and the instruction."""
        from . import dockerfile_parse as dp
        try:
            return func(*args)
        except dp.DockerfileError:
            raise
        except CtrError as exc:
            raise dp.DockerfileError(self.shown_path, cmd.line, cmd.keyword, exc.msg) from None
        except OSError as exc:
            where = ' %s' % exc.filename if exc.filename else ''
            raise dp.DockerfileError(self.shown_path, cmd.line, cmd.keyword, '%s%s: %s' % (
                type(exc).__name__, where, exc.strerror or exc)) from None


def _key(parent, *parts):
    data = json.dumps([parent] + list(parts), sort_keys=True, separators=(',', ':')).encode('utf-8')
    return 'sha256:' + sha256(data).hexdigest()


__all__ = ['BuildOptions', 'BuildResult', 'Builder', 'NETWORKS', 'StageState']
