#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Install the Debian packages that the tests and the demo need, then make podman usable on this
# host. Safe to run again: apt is only touched when a package is missing, and `apt-get update`
# only when the last one made here is older than a day. Needs root; reads no stdin.
set -euo pipefail

PACKAGES=(
    busybox-static  # static /bin/busybox: test and demo root filesystems
    skopeo umoci    # read our OCI layout (interop tests)
    podman runc buildah  # load/save interop; runc because crun refuses this host's cgroup layout
    zstd
    python3-venv    # make venv on a plain Debian python3
    rsync           # make collection
    shellcheck      # ansible-test sanity: shellcheck
    git ca-certificates iproute2
    nftables python3-pyroute2   # bridge networks on a managed host's /usr/bin/python3 (the venv has its own pyroute2)
    iperf3                      # bench/network.sh: throughput through a published port
)
UPDATE_STAMP=/var/cache/daemonless-ctr/apt-update.stamp
CONTAINERS_CONF=/etc/containers/containers.conf
CONF_MARKER='# Written by daemonless.ctr scripts/deps.sh'

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

log() { printf 'deps: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: installing Debian packages needs root (run: sudo make deps)" >&2
    exit 1
fi

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
            printf '%s\n' "$pkg"
        fi
    done
}

apt_update() {
    log "apt-get update"
    apt-get update -q </dev/null
    mkdir -p "$(dirname "$UPDATE_STAMP")"
    touch "$UPDATE_STAMP"
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [ "${#missing[@]}" -eq 0 ]; then
        log "Debian packages present"
        return
    fi
    if [ -z "$(find "$UPDATE_STAMP" -mmin -1440 2>/dev/null)" ]; then
        apt_update
    fi
    log "apt-get install ${missing[*]}"
    if ! apt-get install "${APT_OPTS[@]}" "${missing[@]}" </dev/null; then
        # The package lists may be stale (a mirror moved on): refresh them once and retry.
        apt_update
        apt-get install "${APT_OPTS[@]}" "${missing[@]}" </dev/null
    fi
}

# podman would raise RLIMIT_NOFILE and RLIMIT_NPROC above this host's hard limits (it sets nproc
# from kernel.pid_max); without CAP_SYS_RESOURCE that fails, so pin both to what the host allows.
limit_or() {
    local value=$1 fallback=$2
    if [ "$value" = unlimited ] || [ "$value" -gt "$fallback" ]; then
        echo "$fallback"
    else
        echo "$value"
    fi
}

podman_conf() {
    local nofile nproc
    nofile=$(limit_or "$(ulimit -Hn)" "$(cat /proc/sys/fs/nr_open)")
    nproc=$(limit_or "$(ulimit -Hu)" "$(cat /proc/sys/kernel/pid_max)")
    cat <<EOF
$CONF_MARKER for this host: rewritten by make deps while this line is here.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
EOF
}

check_podman() {
    local dir image=localhost/daemonless-ctr-deps-check:latest
    dir=$(mktemp -d)
    mkdir -p "$dir/bin"
    cp /bin/busybox "$dir/bin/busybox"
    ln -s busybox "$dir/bin/sh"
    tar -C "$dir" -cf "$dir.tar" .
    podman import -q "$dir.tar" "$image" >/dev/null
    rm -rf "$dir" "$dir.tar"
    if ! out=$(podman run --rm --network none "$image" /bin/sh -c 'echo ok' </dev/null 2>&1); then
        podman rmi -f "$image" >/dev/null 2>&1 || true
        echo "deps: podman cannot run a container on this host: $out" >&2
        exit 1
    fi
    podman rmi -f "$image" >/dev/null
    log "podman run works"
}

configure_podman() {
    local wanted
    wanted=$(podman_conf)
    if [ -e "$CONTAINERS_CONF" ] && ! grep -qF "$CONF_MARKER" "$CONTAINERS_CONF"; then
        log "leaving $CONTAINERS_CONF alone (not written by make deps)"
        return
    fi
    if [ -e "$CONTAINERS_CONF" ] && [ "$(cat "$CONTAINERS_CONF")" = "$wanted" ]; then
        log "podman configured"
        return
    fi
    mkdir -p "$(dirname "$CONTAINERS_CONF")"
    printf '%s\n' "$wanted" >"$CONTAINERS_CONF.tmp"
    mv "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"
    log "wrote $CONTAINERS_CONF"
    check_podman
}

install_packages
configure_podman
if [ "${1:-}" = --check-podman ]; then
    check_podman
fi
