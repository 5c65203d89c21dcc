# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container lifecycle: create, start, stop, kill, wait, remove, logs and inspect.

What the CLI and the modules call. State is always read back from the host:
a container whose monitor is gone (killed, or the host rebooted) is reported as
such, never as running on the strength of an old state file.
"""

from __future__ import annotations

import json
import os
import signal
import time

from .. import fsutil
from ..errors import Conflict, CtrError, InvalidArgument, KernelError, NotFound
from ..regex import lazy
from .caps import effective_caps, normalize_caps
from .containers import Container, ContainerStore, State, new_id, now, validate_name
from .procs import parent_of, process_start_time

RESTART_POLICIES = ('no', 'on-failure', 'always', 'unless-stopped')
DEFAULT_STOP_TIMEOUT = 10


def parse_signal(value, option='stop_signal'):
    """'SIGTERM', 'TERM', '15' -> 15."""
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip().upper()
        if text.isdigit():
            number = int(text)
        else:
            name = text if text.startswith('SIG') else 'SIG' + text
            try:
                number = int(getattr(signal.Signals, name))
            except AttributeError:
                raise InvalidArgument('%s "%s" is not a signal name or number' % (option, value))
    if not 1 <= number <= 64:
        raise InvalidArgument('%s "%s" is out of the range 1-64' % (option, value))
    return number


class Runtime:
    """Containers of one store root."""

    def __init__(self, root=None):
        self.containers = ContainerStore(root)
        self._images = None
        self._launcher = None

    def prelaunch(self):
        """Launch the monitor of this runtime's next start now, when it is to be a fresh interpreter
        (see monitor.FRESH_ABOVE): it boots while the caller goes on (creating the container, say).
        Unused, it goes away when this process exits or drops the runtime."""
        if self._launcher is None:
            from . import monitor
            self._launcher = monitor.Launcher()

    @property
    def images(self):
        """The store's images: made on first use (exec, stop, logs and inspect of a container need none)."""
        if self._images is None:
            from ..images import ImageStore
            self._images = ImageStore(self.containers.root)
        return self._images

    # -- reading -----------------------------------------------------------

    def refresh(self, container):
        """Correct a stale state: a running container whose monitor is gone is not running any more."""
        state = container.State
        if state.Status not in ('running', 'restarting', 'paused') or not state.MonitorPid:
            return container
        started = process_start_time(state.MonitorPid)
        if started is not None and started == state.MonitorStart:
            return container
        alive = self._pid_alive(state)
        state.Running, state.Restarting, state.MonitorPid = alive, False, 0
        if not alive:
            state.Status, state.Pid = 'exited', 0
            state.ExitCode = 255
            state.FinishedAt = state.FinishedAt if state.FinishedAt[:4] != '0001' else now()
            state.Error = 'the monitor is gone (killed, or the host restarted): the exit code is unknown'
        else:
            state.Error = 'the monitor is gone: logs and the exit code are no longer recorded'
        return container

    @staticmethod
    def _pid_alive(state):
        """Is the container's PID 1 still the process we started (not a reused PID, not a zombie)?"""
        if not state.Pid:
            return False
        started = process_start_time(state.Pid)
        return started is not None and (not state.PidStart or started == state.PidStart)

    def get(self, name):
        return self.refresh(self.containers.get(name))

    def find(self, name, prefixes=True):
        container = self.containers.find(name, prefixes)
        return self.refresh(container) if container else None

    def list(self, all_=True):
        out = [self.refresh(c) for c in self.containers.list()]
        return out if all_ else [c for c in out if c.State.Running]

    # -- create -------------------------------------------------------------

    def create(self, image, name=None, **options):
        """A new container record (nothing runs yet); validates everything first."""
        return self.commit_plan(self.plan(image, name, **options))

    def _check_user(self, img, user):
        """A user name the image's /etc/passwd lacks fails at create, not at start (when it is unpacked)."""
        from ..store import chain_ids
        from . import security
        names = [part for part in str(user).split(':') if part and not part.isdigit()]
        dirs = [self.images.store.layer_dir(c) for c in reversed(chain_ids(img.diff_ids))]
        if not names or not all(os.path.isdir(d) for d in dirs):
            return          # numeric, or the image is not unpacked yet (start will check)
        texts = {}
        for rel in ('/etc/passwd', '/etc/group'):
            texts[rel] = next((t for t in (security.read_file_in_root(d, rel) for d in dirs) if t is not None), None)
        security.lookup_user(str(user), texts['/etc/passwd'], texts['/etc/group'])

    def commit_plan(self, container):
        """Store a planned container (the name must still be free), and make the volumes it uses."""
        from . import volumemounts
        if container.HostConfig.get('PortBindings'):    # a host port held fails before anything is made
            from ..network import endpoints
            endpoints.check_ports(self.containers.root, container.HostConfig['PortBindings'], container.Name)
        cfg = self._image_config(container)
        volumemounts.assign(container, cfg)
        self.containers.create(container)
        volumemounts.ensure(self.containers.root, container, cfg)
        return container

    def _image_config(self, container):
        """The ``config`` of the container's image ({} when the image is gone)."""
        image = self.images.find(container.Image) or self.images.by_manifest(container.ImageManifest)
        return (image.config.get('config') or {}) if image is not None else {}

    @staticmethod
    def differences(existing, planned):
        """What differs between a container on the host and a planned one: [] means keep it.

        Compared as read back from ``config.json``, with the image's defaults already merged
        into both; a default hostname (the container's own short ID) is never a difference.
        """
        out = []
        if existing.Image != planned.Image:
            out.append('image')
        if [existing.Path] + list(existing.Args) != [planned.Path] + list(planned.Args):
            out.append('command')
        for key in sorted(set(existing.Config) | set(planned.Config)):
            if key in ('Image', 'Hostname'):
                continue
            if existing.Config.get(key) != planned.Config.get(key):
                out.append(key)
        planned_default = planned.Config.get('Hostname') == planned.Id[:12]
        existing_default = existing.Config.get('Hostname') == existing.Id[:12]
        if planned_default != existing_default or (
                not planned_default and existing.Config.get('Hostname') != planned.Config.get('Hostname')):
            out.append('Hostname')
        for key in sorted(set(existing.HostConfig) | set(planned.HostConfig)):
            if existing.HostConfig.get(key) != planned.HostConfig.get(key):
                out.append(key)
        if (existing.NetworkingConfig or {}) != (planned.NetworkingConfig or {}):
            out.append('networks')
        return out

    def plan(self, image, name=None, command=None, entrypoint=None, env=None, user=None, working_dir=None,
             hostname=None, labels=None, network_mode='bridge', restart_policy='no', restart_retries=0,
             stop_signal=None, stop_timeout=None, memory=None, cpus=None, pids_limit=None, capabilities=(),
             cap_drop=(), privileged=False, read_only=False, volumes=None, mounts=None, tmpfs=None, networks=None,
             published_ports=None, dns_servers=None, dns_search_domains=None, dns_options=None, etc_hosts=None):
        """The container ``create`` would make, validated, not stored."""
        from ..network import options as netopts
        from . import mountspec
        from . import spec

        user_mounts = mountspec.parse_all(volumes, mounts, tmpfs)

        img = image if hasattr(image, 'manifest_doc') else self.images.get(image)    # an Image: a build step's
        image = image if isinstance(image, str) else img.id
        self._check_user(img, user if user is not None else ((img.config.get('config') or {}).get('User') or ''))
        cfg = img.config.get('config') or {}
        container_id = new_id()
        name = validate_name(name) if name else _generated_name(container_id)
        if hostname is not None and not _HOSTNAME_RE.match(str(hostname)):
            raise InvalidArgument('hostname "%s" is not a host name (letters, digits, "-" and ".", at most 253, '
                                  'labels of at most 63)' % (hostname,), option='hostname', value=hostname)
        net_host_config, networking = netopts.plan(
            self.containers.root, network_mode, networks, published_ports, dns_servers, dns_search_domains,
            dns_options, etc_hosts, find_container=lambda text: self.containers.find(text, prefixes=False))
        if isinstance(restart_retries, bool) or not isinstance(restart_retries, int) or restart_retries < 0:
            raise InvalidArgument('restart_retries "%s" is not a whole number, 0 or more' % (restart_retries,))
        if restart_policy not in RESTART_POLICIES:
            raise InvalidArgument('restart_policy "%s" is not one of %s' % (restart_policy, ', '.join(RESTART_POLICIES)))
        entry, cmd = spec.entrypoint_and_cmd(cfg, entrypoint, command)
        argv = spec.command_line(cfg, entrypoint, command)
        env_list = spec.merge_env(cfg.get('Env') or [], env or {})
        cwd = spec.working_dir(cfg, working_dir)
        signal_name = stop_signal or cfg.get('StopSignal') or 'SIGTERM'
        parse_signal(signal_name)
        limits = _limits(memory, cpus, pids_limit)
        effective_caps(capabilities or (), cap_drop or (), privileged)
        config = {
            'Hostname': hostname or container_id[:12], 'Domainname': '', 'User': user if user is not None else
            (cfg.get('User') or ''), 'Env': env_list, 'Cmd': cmd, 'Entrypoint': entry or None, 'WorkingDir': cwd,
            'Labels': dict(cfg.get('Labels') or {}, **(labels or {})), 'Image': image,
            'StopSignal': signal_name, 'StopTimeout': DEFAULT_STOP_TIMEOUT if stop_timeout is None else int(stop_timeout),
            'ExposedPorts': cfg.get('ExposedPorts') or {},
        }
        host_config = {
            'RestartPolicy': {'Name': restart_policy, 'MaximumRetryCount': restart_retries},
            'Memory': limits.memory or 0, 'NanoCpus': int(round((limits.cpus or 0) * 1e9)), 'PidsLimit': limits.pids or 0,
            'CapAdd': _cap_names(capabilities, 'capabilities'), 'CapDrop': _cap_names(cap_drop, 'cap_drop'), 'Privileged': bool(privileged),
            'ReadonlyRootfs': bool(read_only), 'Binds': [], 'Mounts': [], 'Tmpfs': {},
        }
        host_config.update(mountspec.to_host_config(user_mounts))
        host_config.update(net_host_config)
        return Container(Id=container_id, Name=name, Created=now(), Image=img.id, ImageName=image,
                         Path=argv[0], Args=argv[1:], Config=config, HostConfig=host_config, State=State(),
                         ImageManifest=img.manifest.digest, NetworkingConfig=networking)

    # -- start / stop -------------------------------------------------------

    def start(self, name):
        """Start a created or exited container; returns (container, changed)."""
        container = self.get(name)
        with self.container_lock(container.Id):
            return self._start(container.Id)

    def container_lock(self, container_id):
        """The container's own lock: one start, removal or commit at a time (two monitors on one rootfs
        would be a disaster, and a commit must not read a rootfs that is being unmounted)."""
        return fsutil.flocked(os.path.join(self.containers.dir(container_id), 'start.lock'), make_dir=False)

    def _start(self, container_id):
        from . import monitor, rootfs
        container = self.get(container_id)
        if container.State.Running or container.State.Status == 'restarting':
            return container, False             # running, or its monitor is about to restart it
        deadline = time.time() + 10
        while container.State.MonitorPid and time.time() < deadline:
            time.sleep(0.02)                    # a monitor still cleaning up after the last run
            container = self.get(container_id)
        if container.State.MonitorPid:
            raise Conflict('container %s still has a monitor (pid %d) winding down; try again'
                           % (container.Name, container.State.MonitorPid))
        directory = self.containers.dir(container.Id)
        try:
            os.unlink(monitor.stop_marker(directory))
        except FileNotFoundError:
            pass
        launcher, self._launcher = self._launcher or monitor.Launcher(), None   # booting meanwhile
        try:
            wirer = self._early_wirer(container)
            try:
                image = self.images.find(container.Image) or self.images.by_manifest(container.ImageManifest)
                if image is None:
                    raise NotFound('container %s uses image %s, which is no longer in the store'
                                   % (container.Name, container.Image[7:19]))
                layer_dirs = self.images.store.ensure_unpacked(image.layers, image.diff_ids)  # named or not
                net = self._network(container, directory, wirer)
            finally:
                if wirer is not None:
                    wirer.close()
            try:
                paths = rootfs.prepare(directory, layer_dirs, container.Config['Hostname'], net.hosts, net.resolv)
                rootfs.mount(paths)
                try:
                    from . import volumemounts
                    volume_binds = volumemounts.bind_specs(self.containers.root, container,
                                                           image.config.get('config') or {}, paths.merged)
                    plan = self._plan(container, paths, net, volume_binds)
                    launcher.start(container, self.containers, plan, paths)
                except BaseException:
                    if not self.containers.load(container.Id).State.MonitorPid:
                        rootfs.unmount(paths)
                    raise
            except BaseException:
                if net.attached and not self.containers.load(container.Id).State.MonitorPid:
                    from ..network import endpoints
                    endpoints.detach(self.containers.root, container.Id, directory)
                raise
        finally:
            launcher.close()
        return self.get(container.Id), True

    @staticmethod
    def _early_wirer(container):
        """For a bridge-mode container, the helper that wires its links, forked now to load pyroute2 meanwhile."""
        from ..network import options
        if not options.is_bridge(container.HostConfig.get('NetworkMode') or options.NONE):
            return None
        from ..network import endpoints
        return endpoints.Wirer()

    def _network(self, container, directory, wirer=None):
        """Attach a bridge-mode container (or find the namespace it joins); its hosts and resolv.conf."""
        from ..network import dns, options
        host = container.HostConfig
        mode = host.get('NetworkMode') or options.NONE
        net = _NetworkStart()
        if options.is_bridge(mode):
            from ..network import endpoints
            data = endpoints.attach(self.containers.root, container, directory, wirer)
            try:
                net.attached, net.netns = True, endpoints.netns_path(directory)
                net.hosts_bind = os.path.join(directory, endpoints.HOSTS_FILE)
                with open(net.hosts_bind, 'r', encoding='utf-8') as f:
                    net.hosts = f.read()
                gateway = data['Networks'][data['Order'][0]]['Gateway']
                net.resolv = dns.resolv_conf(servers=host.get('Dns'), search=host.get('DnsSearch'),
                                             options=host.get('DnsOptions'), gateway=gateway)
            except BaseException:
                endpoints.detach(self.containers.root, container.Id, directory)
                raise
        elif mode.startswith(options.CONTAINER):
            other = self.containers.find(mode[len(options.CONTAINER):], prefixes=False)
            other = self.refresh(other) if other is not None else None
            if other is None or not other.State.Running:
                raise Conflict('container %s joins the network of container %s, which is not running'
                               % (container.Name, mode[len(options.CONTAINER):][:12]))
            from ..network import endpoints
            other_dir = self.containers.dir(other.Id)
            held = endpoints.netns_path(other_dir)
            if os.path.exists(held) and endpoints.settings(other_dir):
                net.netns = held
            else:           # its PID 1's namespace: checked to be that process still at every (re)start
                net.netns, net.netns_pid = '/proc/%d/ns/net' % other.State.Pid, (other.State.Pid, other.State.PidStart)
            for name in ('hosts', 'resolv.conf'):
                try:
                    with open(os.path.join(other_dir, 'init', 'etc', name), 'r', encoding='utf-8') as f:
                        setattr(net, 'hosts' if name == 'hosts' else 'resolv', f.read())
                except OSError:
                    pass
            if endpoints.settings(other_dir):
                net.hosts_bind = os.path.join(other_dir, endpoints.HOSTS_FILE)
        elif mode == options.HOST:
            net.resolv = dns.read('/etc/resolv.conf')
            net.hosts = dns.read('/etc/hosts') or None
        else:
            extra = [tuple(e.split(':', 1)) for e in host.get('ExtraHosts') or []]
            net.hosts = dns.hosts_file(container.Config['Hostname'], None, [container.Name], extra)
            net.resolv = dns.resolv_conf(servers=host.get('Dns'), search=host.get('DnsSearch'),
                                         options=host.get('DnsOptions'))
        return net

    def _plan(self, container, paths, net, volume_binds=()):
        from . import mountspec, seccomp, security, spec
        from .start import StartPlan
        cfg, host = container.Config, container.HostConfig
        who = security.resolve_user(cfg.get('User') or '', paths.merged)
        caps = None if host.get('Privileged') else list(
            effective_caps(host.get('CapAdd') or (), host.get('CapDrop') or (), False))
        env = spec.runtime_env(list(cfg['Env']), cfg['Hostname'], who.home)
        user_mounts = [m for m in mountspec.from_host_config(host) if m.type != mountspec.VOLUME]
        user_mounts += list(volume_binds)
        if net.hosts_bind:          # live: rewritten in place as peers come and go
            user_mounts.append(mountspec.MountSpec(mountspec.BIND, net.hosts_bind, '/etc/hosts'))
        mode = host.get('NetworkMode') or 'none'
        return StartPlan(rootfs=paths.merged, argv=[container.Path] + list(container.Args), env=env,
                         cwd=cfg.get('WorkingDir') or '/', hostname=cfg['Hostname'],
                         network='host' if mode == 'host' else ('none' if mode == 'none' else 'join'),
                         netns=net.netns or '', uid=who.uid, gid=who.gid, groups=list(who.additional_gids), caps=caps,
                         no_new_privs=bool(host.get('NoNewPrivileges')), read_only=bool(host.get('ReadonlyRootfs')),
                         mask=not host.get('Privileged'), mounts=user_mounts, network_owned=net.attached,
                         netns_pid=net.netns_pid, seccomp=seccomp.for_caps(caps))

    def stop(self, name, timeout=None):
        """Stop signal, then SIGKILL after the timeout; returns (container, changed)."""
        container = self.get(name)
        if not container.State.Running and container.State.Status != 'restarting':
            return container, False
        from .monitor import stop_marker
        directory = self.containers.dir(container.Id)
        with open(stop_marker(directory), 'w'):
            pass
        timeout = container.Config.get('StopTimeout', DEFAULT_STOP_TIMEOUT) if timeout is None else timeout
        self._signal(container, parse_signal(container.Config.get('StopSignal') or 'SIGTERM'))
        if not self._wait_stopped(container.Id, timeout):
            self._signal(self.get(container.Id), signal.SIGKILL)
            if not self._wait_stopped(container.Id, 10):
                raise CtrError('container %s did not stop even after SIGKILL' % container.Name)
        return self.get(container.Id), True

    def kill(self, name, sig='SIGKILL'):
        container = self.get(name)
        if not container.State.Running:
            raise Conflict('container %s is not running' % container.Name)
        self._signal(container, parse_signal(sig, 'signal'))
        return container

    def _signal(self, container, number):
        """Signal PID 1 -- only if it is still ours: child of the monitor, or (monitor gone) same start time."""
        state = container.State
        pid = state.Pid
        ours = pid and (parent_of(pid) == state.MonitorPid if state.MonitorPid else self._pid_alive(state))
        if ours:
            if not state.Paused:    # a commit killed while it had the container frozen: a signal would wait
                _thaw_left_frozen(container.Id)
            try:
                os.kill(pid, number)
            except ProcessLookupError:
                pass

    def _wait_stopped(self, container_id, timeout):
        deadline = time.time() + max(0, timeout)
        while True:
            c = self.get(container_id)
            if not c.State.MonitorPid and c.State.Running and not self._pid_alive(c.State):
                # no monitor to record it: we do
                c.State.Running, c.State.Status, c.State.Pid, c.State.FinishedAt = False, 'exited', 0, now()
                self.containers.save_state(c)
            if not c.State.Running and not c.State.MonitorPid:
                return True
            if time.time() >= deadline:
                return False
            time.sleep(0.02)

    def wait(self, name, timeout=None):
        """Block until the container is done (its monitor exited); returns its exit code."""
        container = self.get(name)
        deadline = None if timeout is None else time.time() + timeout
        while container.State.MonitorPid and (deadline is None or time.time() < deadline):
            time.sleep(0.02)
            container = self.get(container.Id)
        return container.State.ExitCode

    def remove(self, name, force=False, keep_volumes=False):
        """Remove a container (``force`` kills a running one first) and, unless ``keep_volumes``, its
        anonymous volumes; returns whether it existed."""
        container = self.find(name)
        if container is None:
            return False
        with self.container_lock(container.Id):           # not under a start of the same container
            return self._remove(self.get(container.Id), force, keep_volumes)

    def _remove(self, container, force, keep_volumes):
        if not container.State.Running and container.State.MonitorPid and container.State.Status != 'restarting':
            self._wait_stopped(container.Id, 10)     # exited: its monitor is still cleaning up
            container = self.get(container.Id)
        if container.State.Running or container.State.MonitorPid:
            if not force:
                raise Conflict('container %s is running; stop it first or use force' % container.Name)
            self.stop(container.Id, timeout=0)
            self._wait_stopped(container.Id, 10)
        from . import rootfs
        directory = self.containers.dir(container.Id)
        paths = rootfs.paths(directory, [])
        rootfs.unmount(paths)
        if os.path.exists(os.path.join(directory, 'netns')) or os.path.exists(os.path.join(directory, 'network.json')):
            from ..network import endpoints
            endpoints.detach(self.containers.root, container.Id, directory)
        try:
            from . import cgroups
            cg = cgroups.Cgroup.open(container.Id)
            if cg is not None:
                cg.destroy()
        except ImportError:
            pass
        self.containers.remove_record(container)
        if container.AnonymousVolumes and not keep_volumes:
            from . import volumemounts
            volumemounts.remove_anonymous(self.containers.root, container, self.containers.list())
        return True

    def boot(self):
        """Start what a restart policy says should run after the host came up: what Docker's daemon does.

        ``always``: every such container not running; ``unless-stopped``: those not stopped by a
        user (no stop marker). Returns ``[(name, error or None)]``; one failure stops no other.
        """
        from .monitor import stop_marker
        out = []
        everything = self.list()
        # a container:X container after X: it joins X's network namespace, which must be there
        joins = {c.Id: (c.HostConfig.get('NetworkMode') or '')[len('container:'):] for c in everything
                 if (c.HostConfig.get('NetworkMode') or '').startswith('container:')}
        everything.sort(key=lambda c: 1 if c.Id in joins else 0)
        for container in everything:
            policy = (container.HostConfig.get('RestartPolicy') or {}).get('Name') or 'no'
            if container.State.Running or policy not in ('always', 'unless-stopped'):
                continue
            if policy == 'unless-stopped' and os.path.exists(stop_marker(self.containers.dir(container.Id))):
                continue
            try:
                self.start(container.Id)
                out.append((container.Name, None))
            except CtrError as exc:
                out.append((container.Name, exc.msg))
        return out

    # -- exec -----------------------------------------------------------------

    def exec(self, name, argv, env=None, user=None, workdir=None, stdin=None, detach=False):
        """Run ``argv`` inside the running container (see :mod:`.execute`); returns an ExecResult."""
        from . import execute
        return execute.run(execute.prepare(self.get(name), argv, env, user, workdir), stdin, detach)

    def path_exists(self, container, path, cwd=None):
        """Does ``path`` exist inside the running container (resolved in its root, never outside)?

        A relative ``path`` is taken from ``cwd``, else the container's working directory.
        """
        from . import security
        state = container.State
        if not state.Running or not state.Pid or (state.PidStart and process_start_time(state.Pid) != state.PidStart):
            raise Conflict('container %s is not running' % container.Name)
        if not path.startswith('/'):
            path = (cwd or container.Config.get('WorkingDir') or '/').rstrip('/') + '/' + path
        root = os.open('/proc/%d/root' % state.Pid, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if state.PidStart and process_start_time(state.Pid) != state.PidStart:
                raise Conflict('container %s is not running' % container.Name)
            os.close(security.open_in_root(root, path))
            return True
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise KernelError.from_oserror('look up inside container %s' % container.Name, path, exc)
        finally:
            os.close(root)

    # -- output ---------------------------------------------------------------

    def log_path(self, container):
        return os.path.join(self.containers.dir(container.Id), container.Id + '-json.log')

    def logs(self, name, tail=None):
        """``[(stream, text)]`` of the container's log (the rotated file first)."""
        container = self.get(name)
        path = self.log_path(container)
        lines = []
        for p in (path + '.1', path):
            try:
                with open(p, 'rb') as f:
                    for raw in f:
                        try:
                            rec = json.loads(raw.decode('utf-8'))
                            lines.append((rec['stream'], rec['log']))
                        except (ValueError, KeyError):
                            continue
            except FileNotFoundError:
                continue
        return lines[-tail:] if tail else lines

    def inspect(self, container):
        """Docker's ``container inspect`` shape (see :mod:`.inspect`)."""
        from .inspect import inspect
        return inspect(self, container)


class _NetworkStart:
    """What starting a container's network gave: a namespace to join, /etc files, whether to detach later."""

    def __init__(self):
        self.attached, self.netns, self.hosts, self.resolv, self.hosts_bind = False, None, None, None, None
        self.netns_pid = None           # (pid, start time) when ``netns`` is a process's /proc/PID/ns/net


_HOSTNAME_RE = lazy(r'(?=.{1,253}\Z)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?'
                    r'(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\Z')


def _cap_names(names, option):
    """Capabilities as Docker shows them (CAP_SYS_TIME), sorted, so SYS_TIME and cap_sys_time compare equal."""
    normal = normalize_caps(list(names or ()), option)
    return sorted(n if n == 'ALL' or n.startswith('CAP_') else 'CAP_' + n for n in normal)


def _limits(memory, cpus, pids_limit):
    from .limits import Limits
    given = [None if v in (None, '', 0) else v for v in (memory, cpus, pids_limit)]
    return Limits.parse(memory=given[0], cpus=given[1], pids_limit=given[2])


_ADJECTIVES = ('brave', 'calm', 'eager', 'fond', 'gentle', 'happy', 'jolly', 'keen', 'lucid', 'merry', 'nimble',
               'quiet', 'sharp', 'tender', 'vivid', 'witty')
_NOUNS = ('ant', 'bee', 'cat', 'deer', 'eel', 'fox', 'gnu', 'hare', 'ibis', 'jay', 'kiwi', 'lynx', 'mole', 'newt',
          'owl', 'puma')


def _thaw_left_frozen(container_id):
    try:
        from . import cgroups
        cgroup = cgroups.Cgroup.open(container_id)
        if cgroup is not None and cgroup.is_frozen():
            cgroup.thaw()
    except (ImportError, CtrError, OSError):
        pass


def _generated_name(container_id):
    n = int(container_id[:8], 16)
    return '%s_%s_%s' % (_ADJECTIVES[n % 16], _NOUNS[(n >> 4) % 16], container_id[:6])
