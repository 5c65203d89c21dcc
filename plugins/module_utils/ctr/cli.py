# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python3 -m ctr``: the engine at a shell, over the same calls as the modules.

Commands import only what they need: start-up time is most of a CLI call's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from .cli_build import ARGUMENTS as _BUILD_ARGS
from .cli_common import err as _err
from .cli_common import human as _human
from .cli_common import out as _out
from .cli_common import pairs as _pairs
from .cli_netvol import _args_network, _args_volume
from .errors import CtrError


def _images(args):
    from .images import ImageStore
    from .refs import Reference
    rows = []
    images = ImageStore(args.root)
    for image in images.list():
        names = image.names or ['<none>:<none>']
        for name in names:
            if name.startswith('<none>'):
                repo, tag = '<none>', '<none>'
            else:
                ref = Reference.parse(name)
                repo, tag = ref.name, ref.tag or '<none>'
            rows.append((repo, tag, image.short_id, image.config.get('created', ''), _human(image.size(images.store))))
    if args.quiet:
        for image_id in dict.fromkeys(r[2] for r in rows):
            _out(image_id)
        return 0
    header = ('REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE')
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    for row in [header] + rows:
        _out('   '.join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def _inspect(args):
    """Containers first, then images, as ``docker inspect`` does."""
    from .images import ImageStore
    from .runtime.lifecycle import Runtime
    runtime = Runtime(args.root)
    images = ImageStore(args.root)
    out = []
    for name in args.names:
        container = runtime.find(name) if not name.startswith('sha256:') else None
        out.append(runtime.inspect(container) if container else images.get(name).inspect(images.store))
    _out(json.dumps(out, indent=4, sort_keys=True))
    return 0


def _run(args):
    from .runtime import mountspec
    from .runtime.lifecycle import Runtime
    runtime = Runtime(args.root)
    runtime.prelaunch()
    container = runtime.create(args.image, name=args.name, command=args.command or None,
                               entrypoint=[args.entrypoint] if args.entrypoint is not None else None,
                               env=_pairs(args.env, '-e', environ=True), user=args.user, working_dir=args.workdir,
                               hostname=args.hostname, network_mode=args.network, memory=args.memory,
                               cpus=args.cpus, pids_limit=args.pids_limit, read_only=args.read_only,
                               privileged=args.privileged, volumes=args.volume,
                               mounts=[mountspec.parse_mount_flag(m) for m in args.mount], tmpfs=args.tmpfs,
                               published_ports=args.publish, dns_servers=args.dns,
                               etc_hosts=dict(h.split(':', 1) for h in args.add_host if ':' in h))
    try:
        runtime.start(container.Id)
    except BaseException:
        if args.rm:
            runtime.remove(container.Id, force=True)
        raise
    if args.detach:
        _out(container.Id)
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = _follow(runtime, container.Id)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM to the CLI: the container stops too (and goes, with --rm)
        runtime.stop(container.Id)
        code = 130
    if args.rm:
        runtime.remove(container.Id, force=True)
    return code


def _interrupt(signum, frame):
    del signum, frame
    raise KeyboardInterrupt


def _follow(runtime, name):
    """Copy the container's log to our stdout/stderr until it is done; returns its exit code."""
    container = runtime.get(name)
    path = runtime.log_path(container)
    waiter, pidfd = _monitor_waiter(container.State)
    offset, done = 0, False
    try:
        while True:
            finished = not runtime.get(name).State.MonitorPid
            try:
                with open(path, 'rb') as f:
                    f.seek(offset)
                    for raw in f:
                        if not raw.endswith(b'\n'):
                            break
                        offset += len(raw)
                        rec = json.loads(raw.decode('utf-8'))
                        (sys.stdout if rec['stream'] == 'stdout' else sys.stderr).write(rec['log'])
            except FileNotFoundError:
                pass
            sys.stdout.flush()
            if done:
                return runtime.get(name).State.ExitCode
            done = finished
            if not done:
                if waiter is not None:
                    waiter.poll(20)         # wakes the moment the monitor exits
                else:
                    time.sleep(0.02)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _monitor_waiter(state):
    """``(poll object, pidfd)`` on the container's monitor (readable once it exits), or ``(None, None)``."""
    from .runtime.procs import process_start_time
    if not state.MonitorPid or not hasattr(os, 'pidfd_open'):
        return None, None
    try:
        fd = os.pidfd_open(state.MonitorPid)
    except OSError:
        return None, None
    if process_start_time(state.MonitorPid) != state.MonitorStart:    # gone, its PID reused
        os.close(fd)
        return None, None
    import select
    waiter = select.poll()
    waiter.register(fd, select.POLLIN)
    return waiter, fd


def _exec(args):
    from .runtime.lifecycle import Runtime
    if not args.command:
        _err('ctr: error: exec needs a command')
        return 2
    if args.tty and args.interactive and not sys.stdin.isatty():
        _err('ctr: error: the input device is not a TTY (-i -t needs one; drop -t to pipe input)')
        return 2
    if args.tty and not args.detach:
        return _exec_tty(Runtime(args.root), args)
    data = sys.stdin.buffer.read() if args.interactive else None
    result = Runtime(args.root).exec(args.name, args.command, env=_pairs(args.env, '-e', environ=True), user=args.user,
                                     workdir=args.workdir, stdin=data, detach=args.detach)
    if args.detach:
        _out(result.pid)
        return 0
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    return result.rc


def _exec_tty(runtime, args):
    """``exec -t``: the command on a terminal of the container's, relayed to ours (raw mode, window size)."""
    import select
    import termios
    import tty
    from .runtime import execute
    env = dict({'TERM': os.environ.get('TERM') or 'xterm'}, **_pairs(args.env, '-e', environ=True))
    plan = execute.prepare(runtime.get(args.name), args.command, env, args.user, args.workdir)
    master, slave = execute.open_pty(plan.pid)
    ours = sys.stdin.fileno() if sys.stdin.isatty() else None

    def resize(*_unused):
        if ours is not None:
            import fcntl
            size = fcntl.ioctl(ours, termios.TIOCGWINSZ, b'\0' * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    resize()
    try:
        joiner = execute.start_tty(plan, slave, ours=(master,))
    finally:
        os.close(slave)
    saved = termios.tcgetattr(ours) if ours is not None and args.interactive else None
    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        if saved is not None:
            tty.setraw(ours)
        sources = [master] + ([sys.stdin.fileno()] if args.interactive else [])
        os.set_blocking(master, False)
        pending = b''                       # typed, not yet taken by the terminal: never a blocking write
        while True:
            readable = sources if len(pending) < (1 << 20) else [master]
            ready, writable, _x = select.select(readable, [master] if pending else [], [])
            if writable and pending:
                try:
                    pending = pending[os.write(master, pending):]
                except BlockingIOError:
                    pass
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except BlockingIOError:
                    data = None
                except OSError:         # EIO: the last holder of the terminal has gone
                    data = b''
                if data is None:
                    continue
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if args.interactive and sys.stdin.fileno() in ready:
                data = os.read(sys.stdin.fileno(), 65536)
                if data:
                    pending += data
                else:
                    sources.remove(sys.stdin.fileno())
                    pending += b'\x04'                 # end of input, as a terminal gives it
    finally:
        if saved is not None:
            termios.tcsetattr(ours, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)
        os.close(master)
    return execute.wait(joiner)


def _ps(args):
    from .runtime.lifecycle import Runtime
    rows = [('CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES')]
    for c in Runtime(args.root).list(all_=args.all):
        status = c.State.Status if c.State.Status != 'exited' else 'Exited (%d)' % c.State.ExitCode
        command = ' '.join([c.Path] + list(c.Args))
        rows.append((c.Id[:12], c.ImageName, command[:30], c.Created, status, c.Name))
    if args.quiet:
        for row in rows[1:]:
            _out(row[0])
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for row in rows:
        _out('   '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def _logs(args):
    from .runtime.lifecycle import Runtime
    runtime = Runtime(args.root)
    if args.follow:
        _follow(runtime, args.name)
        return 0
    for stream, text in runtime.logs(args.name, tail=args.tail):
        (sys.stdout if stream == 'stdout' else sys.stderr).write(text)
    return 0


def _start(args):
    from .runtime.lifecycle import Runtime
    for name in args.names:
        Runtime(args.root).start(name)
        _out(name)
    return 0


def _stop(args):
    from .runtime.lifecycle import Runtime
    for name in args.names:
        Runtime(args.root).stop(name, timeout=args.time)
        _out(name)
    return 0


def _rm(args):
    from .runtime.lifecycle import Runtime
    status = 0
    for name in args.names:
        if Runtime(args.root).remove(name, force=args.force):
            _out(name)
        else:
            _err('ctr: error: no such container: %s' % name)
            status = 1
    return status


def _import(args):
    from .images import ImageStore
    outcome = ImageStore(args.root).import_rootfs(args.path, args.name, changes=args.change, message=args.message)
    _out(outcome.image.id)
    return 0


def _save(args):
    from . import archives
    from .images import ImageStore
    started = time.time()
    changed = archives.save(ImageStore(args.root), args.names, args.output, args.format)
    if not changed:
        _err('%s already holds these images; not rewritten' % args.output)
    elif args.verbose:
        _err('saved in %.2fs' % (time.time() - started))
    return 0


def _load(args):
    from . import archives
    from .images import ImageStore
    outcome = archives.load(ImageStore(args.root), args.input, name=args.name)
    for image in outcome.images:
        _out('Loaded image: %s' % (', '.join(image.names) or image.id))
    return 0


def _tag(args):
    from .images import ImageStore
    ImageStore(args.root).tag(args.source, args.target)
    return 0


def _rmi(args):
    from .images import ImageStore
    images = ImageStore(args.root)
    status = 0
    for name in args.names:
        outcome = images.remove(name, force=args.force)
        if not outcome.changed:
            _err('ctr: error: no such image: %s' % name)
            status = 1
        for action in outcome.actions:
            _out(action[0].upper() + action[1:])
    return status


def _unpack(args):
    from .images import ImageStore
    for path in ImageStore(args.root).unpack(args.name):
        _out(path)
    return 0


def _gc(args):
    from .store import Store
    report = Store(args.root).gc()
    _out('removed %d blobs (%d bytes) and %d unpacked layers' % (len(report.blobs), report.bytes, len(report.layers)))
    return 0


def _args_images(s):
    s.add_argument('-q', '--quiet', action='store_true', help='only image IDs')
    s.set_defaults(func=_images)


def _args_inspect(s):
    s.add_argument('names', nargs='+', metavar='IMAGE')
    s.set_defaults(func=_inspect)


def _args_run(s):
    s.add_argument('-d', '--detach', action='store_true', help='print the ID and return at once')
    s.add_argument('--rm', action='store_true', help='remove the container when it is done')
    s.add_argument('--name')
    s.add_argument('-e', '--env', action='append', default=[], metavar='KEY=VALUE')
    s.add_argument('-u', '--user')
    s.add_argument('-w', '--workdir')
    s.add_argument('--hostname')
    s.add_argument('--entrypoint')
    s.add_argument('--network', default='bridge', metavar='bridge|host|none|container:NAME|NETWORK')
    s.add_argument('-p', '--publish', action='append', default=[], metavar='[IP:][HOST:]CTR[/udp]')
    s.add_argument('--dns', action='append', default=[], metavar='IP')
    s.add_argument('--add-host', action='append', default=[], dest='add_host', metavar='NAME:IP')
    s.add_argument('-m', '--memory')
    s.add_argument('--cpus')
    s.add_argument('--pids-limit', dest='pids_limit')
    s.add_argument('--read-only', action='store_true', dest='read_only')
    s.add_argument('--privileged', action='store_true')
    s.add_argument('-v', '--volume', action='append', default=[], metavar='/HOST:/CTR[:ro]', help='bind mount')
    s.add_argument('--mount', action='append', default=[], metavar='type=bind,source=/HOST,target=/CTR[,readonly]',
                   help='bind or tmpfs mount, as docker run --mount')
    s.add_argument('--tmpfs', action='append', default=[], metavar='/CTR[:size=64m,mode=1777]')
    s.add_argument('image', metavar='IMAGE')
    s.add_argument('command', nargs=argparse.REMAINDER, metavar='CMD')
    s.set_defaults(func=_run)


def _args_exec(s):
    s.add_argument('-i', '--interactive', action='store_true', help='feed our standard input to the command')
    s.add_argument('-t', '--tty', action='store_true', help='a terminal for the command (with -i: interactive)')
    s.add_argument('-d', '--detach', action='store_true', help='start it and print its PID')
    s.add_argument('-u', '--user')
    s.add_argument('-w', '--workdir')
    s.add_argument('-e', '--env', action='append', default=[], metavar='KEY=VALUE')
    s.add_argument('name', metavar='CONTAINER')
    s.add_argument('command', nargs=argparse.REMAINDER, metavar='CMD')
    s.set_defaults(func=_exec)


def _args_ps(s):
    s.add_argument('-a', '--all', action='store_true')
    s.add_argument('-q', '--quiet', action='store_true')
    s.set_defaults(func=_ps)


def _args_logs(s):
    s.add_argument('-f', '--follow', action='store_true')
    s.add_argument('--tail', type=int)
    s.add_argument('name', metavar='CONTAINER')
    s.set_defaults(func=_logs)


def _args_boot(s):
    s.set_defaults(func=_boot)


def _boot(args):
    from .runtime.lifecycle import Runtime
    status = 0
    for name, error in Runtime(args.root).boot():
        if error:
            _err('ctr: error: %s: %s' % (name, error))
            status = 1
        else:
            _out(name)
    return status


def _args_start(s):
    s.add_argument('names', nargs='+', metavar='CONTAINER')
    s.set_defaults(func=_start)


def _args_stop(s):
    s.add_argument('names', nargs='+', metavar='CONTAINER')
    s.add_argument('-t', '--time', type=int, help='seconds to wait before SIGKILL')
    s.set_defaults(func=_stop)


def _args_rm(s):
    s.add_argument('names', nargs='+', metavar='CONTAINER')
    s.add_argument('-f', '--force', action='store_true', help='kill a running container first')
    s.set_defaults(func=_rm)


def _args_import(s):
    s.add_argument('path', metavar='PATH')
    s.add_argument('name', metavar='NAME')
    s.add_argument('-c', '--change', action='append', default=[], help='apply a Dockerfile instruction')
    s.add_argument('-m', '--message', help='history comment')
    s.set_defaults(func=_import)


def _args_save(s):
    s.add_argument('names', nargs='+', metavar='IMAGE')
    s.add_argument('-o', '--output', required=True, metavar='FILE')
    s.add_argument('--format', default='docker-archive', choices=['docker-archive', 'oci-archive'])
    s.add_argument('-v', '--verbose', action='store_true')
    s.set_defaults(func=_save)


def _args_load(s):
    s.add_argument('-i', '--input', required=True, metavar='FILE')
    s.add_argument('--name', help='name for a single unnamed image in the archive')
    s.set_defaults(func=_load)


def _args_tag(s):
    s.add_argument('source', metavar='SOURCE')
    s.add_argument('target', metavar='TARGET')
    s.set_defaults(func=_tag)


def _args_rmi(s):
    s.add_argument('names', nargs='+', metavar='IMAGE')
    s.add_argument('-f', '--force', action='store_true', help='remove an image with several names by ID')
    s.set_defaults(func=_rmi)


def _args_unpack(s):
    s.add_argument('name', metavar='IMAGE')
    s.set_defaults(func=_unpack)


def _args_gc(s):
    s.set_defaults(func=_gc)


# command: (help, arguments), in the order ``ctr --help`` lists them
COMMANDS = {
    'images': ('list images', _args_images),
    'inspect': ('show containers or images in Docker\'s inspect shape', _args_inspect),
    'run': ('create and start a container', _args_run),
    'exec': ('run a command in a running container', _args_exec),
    'ps': ('list containers', _args_ps),
    'logs': ('show a container\'s output', _args_logs),
    'start': ('start containers', _args_start),
    'network': ('manage bridge networks: ls, create, rm, inspect', _args_network),
    'volume': ('manage volumes: ls, create, rm, inspect', _args_volume),
    'boot': ('start the containers whose restart policy says so (at boot: no daemon does it)', _args_boot),
    'stop': ('stop containers', _args_stop),
    'rm': ('remove containers', _args_rm),
    'build': ('build an image from a Dockerfile', _BUILD_ARGS['build']),
    'commit': ('make an image of a container\'s changes', _BUILD_ARGS['commit']),
    'history': ('show the history of an image', _BUILD_ARGS['history']),
    'builder': ('manage the build cache: prune', _BUILD_ARGS['builder']),
    'import': ('import a rootfs directory or tarball as a one-layer image', _args_import),
    'save': ('save images to a docker-archive or oci-archive', _args_save),
    'load': ('load images from a docker-archive or oci-archive', _args_load),
    'tag': ('give an image another name', _args_tag),
    'rmi': ('remove image names, and images left without one', _args_rmi),
    'unpack': ('unpack an image\'s layers for use as overlay lower dirs', _args_unpack),
    'gc': ('remove blobs and unpacked layers no image uses', _args_gc),
}


def _command_in(argv):
    """The command word of ``argv`` (skipping ``--root DIR``), or None when options come first."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == '--root':
            i += 2
        elif word.startswith('--root='):
            i += 1
        else:
            return None if word.startswith('-') else word
    return None


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, sized without :mod:`shutil`: ``add_argument`` makes one to check
    every argument, and shutil (with bz2 and lzma) would add ~2 ms to every run."""

    def __init__(self, prog, *args, **kwargs):
        if kwargs.get('width') is None and len(args) < 3:
            kwargs['width'] = _columns() - 2
        super().__init__(prog, *args, **kwargs)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser with :class:`_Formatter`; its subcommands' parsers are _Parsers too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('formatter_class', _Formatter)
        super().__init__(*args, **kwargs)


def _columns():
    """The terminal's width as shutil.get_terminal_size() gives it: $COLUMNS, the tty's, else 80."""
    try:
        columns = int(os.environ.get('COLUMNS', '0'))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def parser(only=None):
    """The argument parser; with ``only`` (a known command) just that command's: start-up time counts."""
    p = _Parser(prog='ctr', description='Daemonless containers: the daemonless.ctr engine.')
    p.add_argument('--root', help='store root (default: $CTR_ROOT or /var/lib/ctr)')
    sub = p.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name in ([only] if only in COMMANDS else COMMANDS):
        text, arguments = COMMANDS[name]
        arguments(sub.add_parser(name, help=text))
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser(_command_in(argv)).parse_args(argv)
    try:
        return args.func(args)
    except CtrError as exc:
        _err('ctr: error: %s' % exc.msg)
        return 1
    except BrokenPipeError:
        # the reader went away (``| head``): not an error of ours
        sys.stderr.close()
        return 0
    except OSError as exc:
        where = ' "%s"' % exc.filename if exc.filename else ''
        _err('ctr: error:%s %s' % (where, exc.strerror or exc))
        return 1
    except KeyboardInterrupt:
        return 130
