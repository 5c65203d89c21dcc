#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage (as root, from anywhere; no network needed):
#   bench/exec.sh
#
# Exec, timed side by side (issue 5, section 4):
#   1. `ctr exec NAME /bin/true` through the CLI vs `podman exec` vs `nsenter --all -t PID /bin/true`
#      (the floor), into running containers of the same image. Goal: ctr <= 0.1x podman's median.
#   2. Ansible task time of `ctr_exec` vs `containers.podman.podman_container_exec` on the same image,
#      after a first task of each module (which builds its AnsiballZ payload). Goal: <= 0.6x.
# Results go to the section "## Exec" of docs/benchmarks.md.
#
# Environment:
#   RUNS=10             timed rounds of case 1
#   ANSIBLE_RUNS=3      playbook rounds of case 2 (0 skips it)
#   ANSIBLE_VENV=DIR    a venv with the `ansible` package (containers.podman inside); unset: case 2 is
#                       skipped unless ANSIBLE_INSTALL=1, which pip-installs one into the temp dir
#   BENCH_DOC=FILE      results document (default docs/benchmarks.md); BENCH_DOC= (empty) skips it
#   PYTHON=/usr/bin/python3  the interpreter that runs `python3 -m ctr` and the modules
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
RUNS=${RUNS:-10}
ANSIBLE_RUNS=${ANSIBLE_RUNS:-3}
ANSIBLE_VENV=${ANSIBLE_VENV:-}
ANSIBLE_INSTALL=${ANSIBLE_INSTALL:-0}
DOC=${BENCH_DOC-$repo/docs/benchmarks.md}
default_python
TITLE='Exec'
BUSYBOX=${BUSYBOX:-/bin/busybox}
IMG=docker.io/library/busybox:latest

log() { printf '%s\n' "$*" >&2; }
die() { log "exec: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die 'run me as root'
for tool in "$PYTHON" podman nsenter "$BUSYBOX"; do
    command -v "$tool" >/dev/null || die "$tool is not installed (make deps)"
done
[ -n "${EPOCHREALTIME:-}" ] || die 'bash 5 or later is needed (EPOCHREALTIME)'
bench_work exec

podman_config

cleanup() {
    set +e
    remove_containers "$store"
    podman rm -f -a -t 0 >/dev/null 2>&1
    release_work
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$EPOCHREALTIME
busybox_image
ctr run -d --name bench-exec --network none busybox sleep 3600 >/dev/null
podman run -d --pull=never --network none --name bench-exec "$IMG" sleep 3600 >/dev/null
pid=$("$PYTHON" - "$store" <<'EOF'
import sys
from ctr.runtime.lifecycle import Runtime
print(Runtime(sys.argv[1]).get('bench-exec').State.Pid)
EOF
)
# warm-up
ctr exec bench-exec /bin/true
podman exec bench-exec /bin/true
nsenter --all -t "$pid" /bin/true


log "case 1: exec /bin/true, $RUNS rounds"
ids=(ctr podman floor)
declare -A label=(
    [ctr]='ctr exec bench-exec /bin/true'
    [podman]='podman exec bench-exec /bin/true'
    [floor]='nsenter --all -t PID /bin/true (floor)'
)
c_ctr() { ctr exec bench-exec /bin/true; }
c_podman() { podman exec bench-exec /bin/true; }
c_floor() { nsenter --all -t "$pid" /bin/true; }
: >"$work/run.tsv"
for ((round = 1; round <= RUNS; round++)); do
    order=("${ids[@]}")
    ((round % 2 == 0)) && order=(floor podman ctr)
    for id in "${order[@]}"; do timed "$work/run.tsv" "$id" "${label[$id]}" "c_$id"; done
done
for id in "${ids[@]}"; do awk -F '\t' -v id="$id" '$1 == id' "$work/run.tsv"; done >"$work/run-sorted.tsv"
ratio1=$("$PYTHON" "$repo/bench/benchdoc.py" ratio "$work/run-sorted.tsv" ctr podman)
verdict1=$(awk -v r="$ratio1" 'BEGIN { print (r <= 0.1 ? "met" : "NOT met") }')

# -- 2. Ansible ------------------------------------------------------------------------------------------

ansible_note=''
if [ -z "$ANSIBLE_VENV" ] && [ "$ANSIBLE_INSTALL" = 1 ] && [ "$ANSIBLE_RUNS" -gt 0 ]; then
    log "installing the ansible package into $work/venv ..."
    "$PYTHON" -m venv "$work/venv" && "$work/venv/bin/pip" install -q ansible >&2
    ANSIBLE_VENV=$work/venv
fi
: >"$work/run2.tsv"
if [ "$ANSIBLE_RUNS" -gt 0 ] && [ -n "$ANSIBLE_VENV" ] && [ -x "$ANSIBLE_VENV/bin/ansible-playbook" ]; then
    log "case 2: Ansible tasks, $ANSIBLE_RUNS playbook runs"
    mkdir -p "$work/ansible/collections/ansible_collections/daemonless" "$work/ansible/callbacks"
    ln -s "$repo" "$work/ansible/collections/ansible_collections/daemonless/ctr"
    cp "$repo/bench/callbacks/task_tsv.py" "$work/ansible/callbacks/"
    for order in ctr_first podman_first; do
        {
            echo '- hosts: localhost'
            echo '  connection: local'
            echo '  gather_facts: false'
            echo '  vars: {ansible_python_interpreter: "'"$PYTHON"'"}'
            echo '  tasks:'
            ctr_tasks='    - {name: ctr_first_task, daemonless.ctr.ctr_exec: {container: bench-exec, argv: ["true"], root: "'"$store"'"}}
    - {name: ctr_exec, daemonless.ctr.ctr_exec: {container: bench-exec, argv: ["true"], root: "'"$store"'"}}'
            podman_tasks='    - {name: podman_first_task, containers.podman.podman_container_exec: {name: bench-exec, argv: ["true"]}}
    - {name: podman_exec, containers.podman.podman_container_exec: {name: bench-exec, argv: ["true"]}}'
            if [ "$order" = ctr_first ]; then echo "$ctr_tasks"; echo "$podman_tasks"; else echo "$podman_tasks"; echo "$ctr_tasks"; fi
            echo '    - {name: command_true, ansible.builtin.command: "true"}'
        } >"$work/ansible/$order.yml"
    done
    for ((round = 1; round <= ANSIBLE_RUNS; round++)); do
        book=ctr_first; ((round % 2 == 0)) && book=podman_first
        : >"$work/tasks.tsv"
        if ! env TASK_TSV="$work/tasks.tsv" ANSIBLE_COLLECTIONS_PATH="$work/ansible/collections" \
            ANSIBLE_CALLBACK_PLUGINS="$work/ansible/callbacks" ANSIBLE_CALLBACKS_ENABLED=task_tsv \
            ANSIBLE_LOCAL_TEMP="$work/ansible/tmp" ANSIBLE_REMOTE_TEMP="$work/ansible/tmp" \
            LC_ALL=C.UTF-8 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_LOCALHOST_WARNING=0 \
            "$ANSIBLE_VENV/bin/ansible-playbook" -i localhost, "$work/ansible/$book.yml" >"$work/ansible.out" 2>&1; then
            cat "$work/ansible.out" >&2
            die "the playbook failed (round $round)"
        fi
        ! grep -q 'failed$' "$work/tasks.tsv" || die "a task failed (round $round): $(cat "$work/tasks.tsv")"
        awk -F '\t' '{ printf "%s\t-\t%s\t0\n", $1, $2 }' "$work/tasks.tsv" >>"$work/run2.raw"
        log "  round $round ($book): $(awk -F '\t' '{ printf "%s %.2fs; ", $1, $2 }' "$work/tasks.tsv")"
    done
    declare -A label2=(
        [command_true]='ansible.builtin.command: true'
        [ctr_exec]='daemonless.ctr.ctr_exec: true'
        [podman_exec]='containers.podman.podman_container_exec: true'
        [ctr_first_task]='daemonless.ctr.ctr_exec, first task of the playbook'
        [podman_first_task]='containers.podman.podman_container_exec, first task of the playbook'
    )
    for id in command_true ctr_exec podman_exec ctr_first_task podman_first_task; do
        awk -F '\t' -v id="$id" -v l="${label2[$id]}" 'BEGIN { OFS = "\t" } $1 == id { $2 = l; print }' "$work/run2.raw"
    done >"$work/run2.tsv"
    ratio2=$("$PYTHON" "$repo/bench/benchdoc.py" ratio "$work/run2.tsv" ctr_exec podman_exec)
    verdict2=$(awk -v r="$ratio2" 'BEGIN { print (r <= 0.6 ? "met" : "NOT met") }')
    ansible_version=$(LC_ALL=C.UTF-8 "$ANSIBLE_VENV/bin/ansible" --version | awk 'NR == 1')
else
    ansible_note='not run: give ANSIBLE_VENV=DIR (a venv with the ansible package) or ANSIBLE_INSTALL=1'
fi
elapsed=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

echo
"$PYTHON" "$repo/bench/benchdoc.py" table "$work/run-sorted.tsv" --baseline podman
echo "ctr exec / podman exec = ${ratio1}x (goal <= 0.1x: $verdict1)"
if [ -s "$work/run2.tsv" ]; then
    "$PYTHON" "$repo/bench/benchdoc.py" table "$work/run2.tsv" --baseline podman_exec
    echo "ctr_exec / podman_container_exec = ${ratio2}x (goal <= 0.6x: $verdict2)"
fi
echo "total time ${elapsed}s"

[ -n "$DOC" ] || exit 0
{
    echo "## $TITLE"
    echo
    echo "Goals (issue 5): \`ctr exec NAME /bin/true\` within **0.1x** of \`podman exec\`; an Ansible"
    echo "\`ctr_exec\` task within **0.6x** of \`containers.podman.podman_container_exec\`'s."
    echo
    echo -n "Results: **ctr exec = ${ratio1}x podman exec: goal $verdict1.**"
    if [ -s "$work/run2.tsv" ]; then
        echo " **ctr_exec = ${ratio2}x podman_container_exec: goal $verdict2.**"
    else
        echo " Ansible: $ansible_note."
    fi
    echo
    "$PYTHON" "$repo/bench/benchdoc.py" table "$work/run-sorted.tsv" --baseline podman --markdown |
        sed 's/| CPU s (median) |/| CPU s (median, with children) |/'
    echo
    echo "Wall-clock seconds, $RUNS rounds, every command once a round, the order reversed every other"
    echo "round, after one untimed run of each, into a running \`sleep\` of the same busybox image"
    echo "(network none) for each engine; the floor is util-linux's nsenter into every namespace of our"
    echo "container's PID 1."
    if [ -s "$work/run2.tsv" ]; then
        echo
        "$PYTHON" "$repo/bench/benchdoc.py" table "$work/run2.tsv" --baseline podman_exec --markdown |
            awk 'BEGIN { FS = OFS = "|" } { for (i = 7; i < NF; i++) $i = $(i + 1); NF--; print }'
        echo
        echo "Seconds from a task's start to its result (a callback), $ANSIBLE_RUNS playbook runs on localhost,"
        echo "ctr tasks first in odd runs, podman's in even ones; each module's first task of the run (which"
        echo "builds its AnsiballZ payload) is shown apart; modules under \`$PYTHON\`; $ansible_version."
    fi
    echo
    echo "Machine: $(nproc) CPUs, kernel $(uname -r); $("$PYTHON" -c 'import sys; print("Python " + sys.version.split()[0])'),"
    echo "podman $(podman version --format '{{.Client.Version}}' 2>/dev/null), $(runc --version 2>/dev/null | awk 'NR == 1')."
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo none);"
    echo "whole script ${elapsed}s. Rerun: \`bench/exec.sh\`."
} | "$PYTHON" "$repo/bench/benchdoc.py" section "$DOC" "$TITLE"
log "wrote the section \"$TITLE\" of $DOC"
