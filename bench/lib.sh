# shellcheck shell=bash disable=SC2154  # $work, $BUSYBOX: set by the script that sources this
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# What the container benchmarks share; sourced by container_run.sh, network.sh, exec.sh and build.sh
# right after they set $repo. They call default_python, check their tools, call bench_work, and
# define log and die; $BUSYBOX names the busybox binary the image is made of.

# default_python: $PYTHON unless set: /usr/bin/python3 where there is one (a managed Debian host's)
default_python() {
    if [ -z "${PYTHON:-}" ]; then
        PYTHON=python3
        [ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
    fi
}

# bench_work NAME: $PYTHON resolved to the interpreter itself (a pyenv shim is a bash script that
# costs ~90 ms a call); $work, a temp dir, and $store in it; the repo's engine for `python3 -m ctr`,
# with bytecode caches as on any host (some shells set PYTHONDONTWRITEBYTECODE), kept in $work, as is
# the cache of the engine's code that the Ansible modules keep
bench_work() {
    PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')
    work=$(mktemp -d "${TMPDIR:-/var/tmp}/ctr-bench-$1.XXXXXX")
    store=$work/ctr
    export PYTHONPATH=$repo/plugins/module_utils
    unset PYTHONDONTWRITEBYTECODE
    export PYTHONPYCACHEPREFIX=$work/pycache
    export CTR_PYCACHE=$work/ctr-pycache     # the modules' compiled engine (see bytecode_cache.py)
}

ctr() { "$PYTHON" -m ctr --root "$store" "$@"; }
ctr_at() { local root=$1; shift; "$PYTHON" -m ctr --root "$root" "$@"; }

# remove_containers ROOT...: every container of those stores, forced (for the cleanup traps)
remove_containers() {
    local root target
    for root; do
        [ -d "$root/containers" ] || continue
        for target in "$root"/containers/*/; do
            [ -d "$target" ] && ctr_at "$root" rm -f "$(basename "$target")" >/dev/null 2>&1
        done
    done
}

# podman_config: podman with a store, run dir and tmp dir of its own under $work; the host's
# containers.conf (runc) otherwise as is
podman_config() {
    mkdir -p "$work/podman"
    cat >"$work/podman/storage.conf" <<EOF2
[storage]
driver = "overlay"
graphroot = "$work/podman/root"
runroot = "$work/podman/run"
EOF2
    awk -v tmp="$work/podman/tmp" '
        { print } /^\[engine\]/ { print "tmp_dir = \"" tmp "\""; print "events_logger = \"none\""; done = 1 }
        END { if (!done) { print "[engine]"; print "tmp_dir = \"" tmp "\""; print "events_logger = \"none\"" } }' \
        /etc/containers/containers.conf 2>/dev/null >"$work/podman/containers.conf" || true
    export CONTAINERS_STORAGE_CONF=$work/podman/storage.conf CONTAINERS_CONF=$work/podman/containers.conf
}

# busybox_image: busybox:latest from $BUSYBOX in our store, and the same image in podman's (ctr save + podman load)
busybox_image() {
    local rootfs=$work/rootfs applet
    mkdir -p "$rootfs"/{bin,etc,tmp,root}
    chmod 1777 "$rootfs/tmp"; chmod 0700 "$rootfs/root"
    cp "$BUSYBOX" "$rootfs/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    ctr import --change 'CMD ["sh"]' "$rootfs" busybox:latest >/dev/null
    ctr save -o "$work/busybox.tar" busybox:latest
    podman load -q -i "$work/busybox.tar" >/dev/null
}

child_cpu() { awk 'NR == 2 { gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }' "$1"; }

# timed FILE ID LABEL CMD...: run CMD, append one TSV line to FILE (id, label, wall s, CPU s of children)
timed() {
    local file=$1 id=$2 lbl=$3 t0 t1 cpu0 cpu1
    shift 3
    times >"$work/times0"
    t0=$EPOCHREALTIME
    if ! "$@" >"$work/out" 2>&1; then
        cat "$work/out" >&2
        die "case \"$lbl\" failed: $*"
    fi
    t1=$EPOCHREALTIME
    times >"$work/times1"
    cpu0=$(child_cpu "$work/times0"); cpu1=$(child_cpu "$work/times1")
    awk -v id="$id" -v l="$lbl" -v a="$t0" -v b="$t1" -v c="$cpu0" -v d="$cpu1" \
        'BEGIN { printf "%s\t%s\t%.4f\t%.4f\n", id, l, b - a, d - c }' >>"$file"
    awk -v l="$lbl" -v a="$t0" -v b="$t1" 'BEGIN { printf "  %-62s %7.3f s\n", l, b - a }' >&2
}

# release_work: every mount under $work detached (podman's storage makes some as it goes), then $work removed
release_work() {
    local target
    for _ in 1 2 3; do
        awk -v w="$work" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r target; do
            umount -l "$target" 2>/dev/null
        done
        rm -rf "$work" 2>/dev/null && return 0
        sleep 0.5
    done
    log "could not remove $work (a mount left under it?)"
}
