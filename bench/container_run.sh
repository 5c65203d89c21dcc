#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage (as root, from anywhere; no network needed):
#   bench/container_run.sh
#
# Container run, monitors and Ansible tasks, timed side by side (issue 3, section 7):
#   1. `ctr run --rm IMG /bin/true` (network none) vs `podman run --rm --pull=never --network none`
#      of the same image vs `crun run` (or `runc run` when crun refuses this host) of a bundle
#      unpacked by umoci: the floor. Goal: ctr <= 0.1x podman's median.
#   2. N detached containers (`run -d IMG sleep 600`): time of each start, and PSS per container of
#      our monitor vs podman's conmon. Goal: no more than conmon's.
#   3. Ansible task times (optional: ANSIBLE_VENV): ctr_container start of a new container and its
#      unchanged repeat vs containers.podman.podman_container, next to `ansible.builtin.command: true`.
# The image is busybox built from the host's /bin/busybox. podman gets it by `ctr save` + `podman load`
# into a store of its own in the temp dir and never pulls. Results go to the section
# "## Containers: run, monitors, Ansible tasks" of docs/benchmarks.md.
#
# Environment:
#   RUNS=10             timed rounds of case 1 (each round runs every command once)
#   DETACHED=20         detached containers per engine in case 2 (0 skips case 2)
#   ANSIBLE_RUNS=3      playbook rounds of case 3 (0 skips it)
#   ANSIBLE_VENV=DIR    a venv with the `ansible` package (containers.podman inside); unset: case 3 is
#                       skipped unless ANSIBLE_INSTALL=1, which pip-installs one into the temp dir
#   BENCH_DOC=FILE      results document (default docs/benchmarks.md); BENCH_DOC= (empty) skips it
#   PYTHON=/usr/bin/python3  the interpreter that runs `python3 -m ctr` and the Ansible modules (default:
#                       the distribution's, as on a managed host; else the first python3 on PATH)
#   TMPDIR=/var/tmp     where the stores and the bundle go (removed on exit)
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
RUNS=${RUNS:-10}
DETACHED=${DETACHED:-20}
ANSIBLE_RUNS=${ANSIBLE_RUNS:-3}
ANSIBLE_VENV=${ANSIBLE_VENV:-}
ANSIBLE_INSTALL=${ANSIBLE_INSTALL:-0}
DOC=${BENCH_DOC-$repo/docs/benchmarks.md}
default_python
TITLE='Containers: run, monitors, Ansible tasks'
BUSYBOX=${BUSYBOX:-/bin/busybox}
IMG=docker.io/library/busybox:latest

log() { printf '%s\n' "$*" >&2; }
die() { log "container_run: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die 'run me as root (containers need namespaces, mounts and cgroups)'
for n in "$RUNS" "$DETACHED" "$ANSIBLE_RUNS"; do
    case $n in '' | *[!0-9]*) die "RUNS, DETACHED and ANSIBLE_RUNS must be numbers (got \"$n\")" ;; esac
done
[ "$RUNS" -gt 0 ] || die 'RUNS must be at least 1'
for tool in "$PYTHON" podman umoci runc "$BUSYBOX"; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ -n "${EPOCHREALTIME:-}" ] || die 'bash 5 or later is needed (EPOCHREALTIME)'

# The interpreter itself, not a wrapper: a pyenv shim is a bash script that costs ~90 ms a call
bench_work run

podman_config
runtime_state=$work/runtime-state

cleanup() {
    local target
    set +e
    remove_containers "$store"
    podman rm -f -a -t 0 >/dev/null 2>&1
    for target in $(runc --root "$runtime_state" list -q 2>/dev/null); do
        runc --root "$runtime_state" delete -f "$target" >/dev/null 2>&1
    done
    # never rm -rf across a mount left behind
    release_work
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- set-up: image, podman's copy, the bundle -------------------------------------------------

started=$EPOCHREALTIME
log "building busybox from $BUSYBOX into a temp store ..."
busybox_image

floor=runc
floor_note=''
bundle=$work/bundle
umoci unpack --image "$store/oci:$IMG" "$bundle" >/dev/null
"$PYTHON" - "$bundle/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
with open(path) as f:
    config = json.load(f)
config['process']['args'] = ['/bin/true']
config['process']['terminal'] = False
with open(path, 'w') as f:
    json.dump(config, f)
EOF
if command -v crun >/dev/null; then
    if out=$(crun --root "$runtime_state" run --bundle "$bundle" probe 2>&1); then
        floor=crun
    else
        crun --root "$runtime_state" delete -f probe >/dev/null 2>&1 || true
        floor_note="crun $(crun --version | awk 'NR == 1 { print $NF }') refuses this host: \"$out\"; runc is the floor"
    fi
else
    floor_note='crun is not installed; runc is the floor'
fi
[ -z "$floor_note" ] || log "$floor_note"

# warm-up (untimed): unpacked layers, page cache, bytecode caches
ctr run --rm --network none busybox /bin/true
podman run --rm --pull=never --network none "$IMG" /bin/true
"$floor" --root "$runtime_state" run --bundle "$bundle" warm

# -- timing helpers ---------------------------------------------------------------------------

bench_table() { "$PYTHON" "$repo/bench/benchdoc.py" table "$@"; }
bench_ratio() { "$PYTHON" "$repo/bench/benchdoc.py" ratio "$@"; }

# -- 1. run --rm /bin/true ---------------------------------------------------------------------

log "case 1: run --rm /bin/true, $RUNS rounds"
floor_seq=0
run_floor() { floor_seq=$((floor_seq + 1)); "$floor" --root "$runtime_state" run --bundle "$bundle" "b$floor_seq"; }
run1_ids=(python python_s ctr ctr_s ctr_nopyc podman floor)
declare -A run1_label=(
    [python]='python3 -c pass (interpreter start, for scale)'
    [python_s]='python3 -S -c pass (no site import)'
    [ctr]='ctr run --rm --network none busybox /bin/true'
    [ctr_s]='ctr run --rm under python3 -S (no site-packages start-up)'
    [ctr_nopyc]="ctr run --rm, ctr's modules compiled each run (no .pyc)"
    [podman]='podman run --rm --pull=never --network none'
    [floor]="$floor run of a prepared bundle (floor)"
)
run1_python() { "$PYTHON" -c pass; }
run1_python_s() { "$PYTHON" -S -c pass; }
run1_ctr() { ctr run --rm --network none busybox /bin/true; }
run1_ctr_s() { "$PYTHON" -S -m ctr --root "$store" run --rm --network none busybox /bin/true; }
# ctr's modules compiled from source each run (a copy with no __pycache__, none written), the
# standard library from its caches: what a Python that may not write bytecode pays
mkdir -p "$work/nopyc"
cp -r "$repo/plugins/module_utils/ctr" "$work/nopyc/ctr"
find "$work/nopyc" -name __pycache__ -prune -exec rm -rf {} +
run1_ctr_nopyc() {
    env -u PYTHONPYCACHEPREFIX PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$work/nopyc" \
        "$PYTHON" -m ctr --root "$store" run --rm --network none busybox /bin/true
}
run1_podman() { podman run --rm --pull=never --network none "$IMG" /bin/true; }
run1_floor() { run_floor; }
: >"$work/run1.tsv"
for ((round = 1; round <= RUNS; round++)); do
    order=("${run1_ids[@]}")
    if ((round % 2 == 0)); then order=(floor podman ctr_nopyc ctr_s ctr python_s python); fi
    for id in "${order[@]}"; do timed "$work/run1.tsv" "$id" "${run1_label[$id]}" "run1_$id"; done
done
for id in "${run1_ids[@]}"; do awk -F '\t' -v id="$id" '$1 == id' "$work/run1.tsv"; done >"$work/run1-sorted.tsv"
ratio1=$(bench_ratio "$work/run1-sorted.tsv" ctr podman)
verdict1=$(awk -v r="$ratio1" 'BEGIN { print (r <= 0.1 ? "met" : "NOT met") }')

# where a `ctr run` spends its time: imports (-X importtime), in one untimed run
"$PYTHON" -X importtime -m ctr --root "$store" run --rm --network none busybox /bin/true 2>"$work/importtime" >/dev/null
read -r imp_total imp_ctr imp_top < <(awk -F '|' '
    /^import time:/ && $1 !~ /self/ {
        self = $1; sub(/.*:/, "", self); self += 0; name = $3; gsub(/^ +| +$/, "", name)
        total += self; if (name ~ /^ctr(\.|$)/) mine += self
        if (self > best) { best = self; top = name }
    }
    END { printf "%.0f %.0f %s(%.0fms)\n", total / 1000, mine / 1000, top, best / 1000 }' "$work/importtime")
log "imports of one ctr run: ${imp_total} ms, ${imp_ctr} ms of them ctr's own modules; slowest: $imp_top"
# ... and its phases (cProfile, one untimed run; the profiler inflates every figure somewhat)
"$PYTHON" -m cProfile -o "$work/run.prof" -m ctr --root "$store" run --rm --network none busybox /bin/true >/dev/null
phases=$("$PYTHON" - "$work/run.prof" <<'EOF'
import pstats, sys
stats = pstats.Stats(sys.argv[1]).stats
want = [('cli.py', 'main', 'whole command'), ('cli.py', 'parser', 'argument parser'),
        ('lifecycle.py', 'create', 'create'), ('lifecycle.py', 'start', 'start'),
        ('monitor.py', 'spawn', 'of which fork + wait for the monitor'), ('cli.py', '_follow', 'follow the log'),
        ('lifecycle.py', 'remove', 'remove')]
parts = []
for fname, func, text in want:
    cum = [v[3] for (f, _, n), v in stats.items() if n == func and f.endswith('/' + fname)]
    if cum:
        parts.append('%s %.0f ms' % (text, 1000 * max(cum)))
print('; '.join(parts))
EOF
)
log "phases of one ctr run (cProfile): $phases"

# -- 2. detached containers --------------------------------------------------------------------

mem_kib() {   # the FIELD (Pss, Rss) of PID in KiB from smaps_rollup; 0 when the process is gone
    local v
    v=$(awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/smaps_rollup" 2>/dev/null) || true
    echo "${v:-0}"
}
pss_kib() { mem_kib Pss "$1"; }
rss_kib() { mem_kib Rss "$1"; }
: >"$work/run2.tsv"
if [ "$DETACHED" -gt 0 ]; then
    log "case 2: $DETACHED detached containers per engine"
    start2_ctr() { ctr run -d --network none --name "bench-d$1" busybox sleep 600; }
    start2_podman() { podman run -d --pull=never --network none --name "bench-d$1" "$IMG" sleep 600; }
    declare -A t2_total
    for engine in ctr podman; do
        t0=$EPOCHREALTIME
        for ((i = 1; i <= DETACHED; i++)); do
            if [ "$engine" = ctr ]; then lbl="ctr run -d busybox sleep 600 (one of $DETACHED)"
            else lbl="podman run -d --pull=never --network none (one of $DETACHED)"; fi
            timed "$work/run2.tsv" "$engine" "$lbl" "start2_$engine" "$i"
        done
        t2_total[$engine]=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    done
    sleep 1   # let every monitor settle into its steady state
    ctr_pids=$(for d in "$store"/containers/*/; do
        "$PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d.get("MonitorPid") or d.get("State", {}).get("MonitorPid", 0))' \
            "$d/state.json"
    done)
    podman_pids=$(podman ps -q | xargs podman inspect --format '{{.State.ConmonPid}}')
    sum_mem() { local f=$1 pid total=0 n=0; shift; for pid in "$@"; do total=$((total + $("$f" "$pid"))); n=$((n + 1)); done; echo "$total $n"; }
    # shellcheck disable=SC2086
    { read -r ctr_pss ctr_n; read -r ctr_rss _; read -r conmon_pss conmon_n; read -r conmon_rss _; } < <(
        sum_mem pss_kib $ctr_pids; sum_mem rss_kib $ctr_pids; sum_mem pss_kib $podman_pids; sum_mem rss_kib $podman_pids)
    [ "$ctr_n" = "$DETACHED" ] || die "found $ctr_n ctr monitors for $DETACHED containers"
    [ "$conmon_n" = "$DETACHED" ] || die "found $conmon_n conmon processes for $DETACHED containers"
    # the least a Python monitor could weigh: idle interpreters that imported only os, json, signal
    bare_pids=()
    for ((i = 1; i <= DETACHED; i++)); do
        "$PYTHON" -S -c 'import os, json, signal, time; time.sleep(600)' & bare_pids+=("$!")
    done
    sleep 1
    read -r bare_pss _ < <(sum_mem pss_kib "${bare_pids[@]}")
    kill "${bare_pids[@]}"; wait "${bare_pids[@]}" 2>/dev/null || true
    per() { awk -v t="$1" -v n="$2" 'BEGIN { printf "%.0f", t / n }'; }
    ctr_pss_each=$(per "$ctr_pss" "$ctr_n"); conmon_pss_each=$(per "$conmon_pss" "$conmon_n")
    bare_pss_each=$(per "$bare_pss" "$DETACHED")
    ctr_rss_each=$(per "$ctr_rss" "$ctr_n"); conmon_rss_each=$(per "$conmon_rss" "$conmon_n")
    verdict2=$(awk -v a="$ctr_pss_each" -v b="$conmon_pss_each" 'BEGIN { print (a <= b ? "met" : "NOT met") }')
    pss_ratio=$(awk -v a="$ctr_pss_each" -v b="$conmon_pss_each" 'BEGIN { printf "%.1f", a / b }')
    log "PSS per container: ctr monitor ${ctr_pss_each} KiB, conmon ${conmon_pss_each} KiB"
    t0=$EPOCHREALTIME
    for ((i = 1; i <= DETACHED; i++)); do ctr rm -f "bench-d$i" >/dev/null; done
    rm2_ctr=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    t0=$EPOCHREALTIME
    names=(); for ((i = 1; i <= DETACHED; i++)); do names+=("bench-d$i"); done
    podman rm -f -t 0 "${names[@]}" >/dev/null
    rm2_podman=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
fi

# -- 3. Ansible tasks --------------------------------------------------------------------------

ansible_note=''
: >"$work/run3.tsv"
if [ "$ANSIBLE_RUNS" -gt 0 ] && [ -z "$ANSIBLE_VENV" ] && [ "$ANSIBLE_INSTALL" = 1 ]; then
    log 'installing the ansible package into a temp venv ...'
    "$PYTHON" -m venv "$work/venv" && "$work/venv/bin/pip" install -q ansible >&2
    ANSIBLE_VENV=$work/venv
fi
if [ "$ANSIBLE_RUNS" -gt 0 ] && [ -n "$ANSIBLE_VENV" ] && [ -x "$ANSIBLE_VENV/bin/ansible-playbook" ]; then
    log "case 3: Ansible tasks, $ANSIBLE_RUNS playbook runs"
    mkdir -p "$work/ansible/collections/ansible_collections/daemonless" "$work/ansible/callbacks"
    ln -s "$repo" "$work/ansible/collections/ansible_collections/daemonless/ctr"
    cp "$repo/bench/callbacks/task_tsv.py" "$work/ansible/callbacks/"   # one TSV line per task
    for order in ctr_first podman_first; do
        {
            echo '- hosts: localhost'
            echo '  connection: local'
            echo '  gather_facts: false'
            echo '  vars: {ansible_python_interpreter: "'"$PYTHON"'"}'
            echo '  tasks:'
            echo '    - {name: command_true, ansible.builtin.command: "true"}'
            # the first task of a module in a playbook also builds its AnsiballZ payload (cached for
            # the rest of the run): a task on a missing container pays that, so the timed ones do not
            ctr_tasks='    - {name: ctr_first_task, daemonless.ctr.ctr_container: {name: bench-missing, state: absent, root: "'"$store"'"}}
    - name: ctr_new
      daemonless.ctr.ctr_container: &ctr {name: bench-ans, image: "busybox:latest", command: [sleep, "600"], network_mode: none, root: "'"$store"'"}
    - {name: ctr_unchanged, daemonless.ctr.ctr_container: *ctr}'
            podman_tasks='    - {name: podman_first_task, containers.podman.podman_container: {name: bench-missing, state: absent}}
    - name: podman_new
      containers.podman.podman_container: &pod {name: bench-ans, image: "'$IMG'", command: [sleep, "600"], network: none, pull: never, state: started}
    - {name: podman_unchanged, containers.podman.podman_container: *pod}'
            if [ "$order" = ctr_first ]; then echo "$ctr_tasks"; echo "$podman_tasks"; else echo "$podman_tasks"; echo "$ctr_tasks"; fi
            echo '    - {name: command_true_again, ansible.builtin.command: "true"}'
            echo '    - {name: ctr_remove, daemonless.ctr.ctr_container: {name: bench-ans, state: absent, root: "'"$store"'"}}'
            echo '    - {name: podman_remove, ansible.builtin.command: "podman rm -f -t 0 bench-ans"}'
        } >"$work/ansible/$order.yml"
    done
    for ((round = 1; round <= ANSIBLE_RUNS; round++)); do
        book=ctr_first; ((round % 2 == 0)) && book=podman_first
        : >"$work/tasks.tsv"
        if ! env TASK_TSV="$work/tasks.tsv" ANSIBLE_COLLECTIONS_PATH="$work/ansible/collections" \
            ANSIBLE_CALLBACK_PLUGINS="$work/ansible/callbacks" ANSIBLE_CALLBACKS_ENABLED=task_tsv \
            ANSIBLE_LOCAL_TEMP="$work/ansible/tmp" ANSIBLE_REMOTE_TEMP="$work/ansible/tmp" \
            LC_ALL=C.UTF-8 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_LOCALHOST_WARNING=0 \
            ANSIBLE_INVENTORY_UNPARSED_WARNING=0 \
            "$ANSIBLE_VENV/bin/ansible-playbook" -i localhost, "$work/ansible/$book.yml" >"$work/ansible.out" 2>&1; then
            cat "$work/ansible.out" >&2
            die "the playbook failed (round $round); its output is above"
        fi
        ! grep -q 'failed$' "$work/tasks.tsv" || die "a task failed (round $round): $(cat "$work/tasks.tsv")"
        awk -F '\t' '{ sub(/_again$/, "", $1); printf "%s\t-\t%s\t0\n", $1, $2 }' "$work/tasks.tsv" >>"$work/run3.raw"
        log "  round $round ($book): $(awk -F '\t' '{ printf "%s %.2fs %s; ", $1, $2, $3 }' "$work/tasks.tsv")"
        # the two "new" tasks must change, the repeats must not
        awk -F '\t' '($1 ~ /_new$/ && $3 != "changed") || ($1 ~ /_unchanged$/ && $3 != "ok") { bad = 1 } END { exit bad }' \
            "$work/tasks.tsv" || die "a new task did not change or a repeat changed (round $round)"
    done
    declare -A run3_label=(
        [command_true]='ansible.builtin.command: true'
        [ctr_new]='daemonless.ctr.ctr_container, new container (changed)'
        [ctr_unchanged]='daemonless.ctr.ctr_container, repeat (not changed)'
        [podman_new]='containers.podman.podman_container, new container (changed)'
        [podman_unchanged]='containers.podman.podman_container, repeat (not changed)'
        [ctr_first_task]='daemonless.ctr.ctr_container, first task of the playbook (absent, not there)'
        [podman_first_task]='containers.podman.podman_container, first task of the playbook (absent, not there)'
    )
    for id in command_true ctr_new ctr_unchanged podman_new podman_unchanged ctr_first_task podman_first_task; do
        awk -F '\t' -v id="$id" -v l="${run3_label[$id]}" 'BEGIN { OFS = "\t" } $1 == id { $2 = l; print }' "$work/run3.raw"
    done >"$work/run3.tsv"
    # the monitors of containers that Ansible tasks started: the module process that made them is gone
    APSS=5
    {
        echo '- hosts: localhost'
        echo '  connection: local'
        echo '  gather_facts: false'
        echo '  vars: {ansible_python_interpreter: "'"$PYTHON"'"}'
        echo '  tasks:'
        echo '    - daemonless.ctr.ctr_container: {name: "bench-apss{{ item }}", image: "busybox:latest", command: [sleep, "600"], network_mode: none, root: "'"$store"'"}'
        echo "      loop: $(seq -s, 1 "$APSS" | sed 's/^/[/; s/$/]/')"
        echo '    - containers.podman.podman_container: {name: "bench-apss{{ item }}", image: "'"$IMG"'", command: [sleep, "600"], network: none, pull: never, state: started}'
        echo "      loop: $(seq -s, 1 "$APSS" | sed 's/^/[/; s/$/]/')"
    } >"$work/ansible/pss.yml"
    env ANSIBLE_COLLECTIONS_PATH="$work/ansible/collections" ANSIBLE_LOCAL_TEMP="$work/ansible/tmp" \
        ANSIBLE_REMOTE_TEMP="$work/ansible/tmp" LC_ALL=C.UTF-8 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
        ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 \
        "$ANSIBLE_VENV/bin/ansible-playbook" -i localhost, "$work/ansible/pss.yml" >"$work/ansible.out" 2>&1 ||
        { cat "$work/ansible.out" >&2; die 'the PSS playbook failed; its output is above'; }
    sleep 1
    apss_ctr_pids=$(for d in "$store"/containers/*/; do
        "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("MonitorPid", 0))' "$d/state.json"
    done)
    apss_podman_pids=$(podman ps -q --filter name=bench-apss | xargs podman inspect --format '{{.State.ConmonPid}}')
    apss_sum() { local pid total=0 n=0; for pid in "$@"; do total=$((total + $(pss_kib "$pid"))); n=$((n + 1)); done
                 awk -v t="$total" -v n="$n" 'BEGIN { printf "%.0f %d\n", (n ? t / n : 0), n }'; }
    # shellcheck disable=SC2086
    read -r apss_ctr apss_ctr_n < <(apss_sum $apss_ctr_pids)
    # shellcheck disable=SC2086
    read -r apss_conmon apss_conmon_n < <(apss_sum $apss_podman_pids)
    if [ "$apss_ctr_n" != "$APSS" ] || [ "$apss_conmon_n" != "$APSS" ]; then
        die "found $apss_ctr_n ctr monitors and $apss_conmon_n conmons for $APSS containers of each"
    fi
    for ((i = 1; i <= APSS; i++)); do ctr rm -f "bench-apss$i" >/dev/null; podman rm -f -t 0 "bench-apss$i" >/dev/null; done
    log "PSS per monitor of a container started by an Ansible task: ctr ${apss_ctr} KiB, conmon ${apss_conmon} KiB"
    ratio3=$(bench_ratio "$work/run3.tsv" ctr_new podman_new)
    delta3=$("$PYTHON" - "$work/run3.tsv" <<'EOF'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    f = line.rstrip('\n').split('\t')
    t.setdefault(f[0], []).append(float(f[2]))
print('%.2f' % (statistics.median(t['ctr_unchanged']) - statistics.median(t['command_true'])))
EOF
)
    verdict3a=$(awk -v r="$ratio3" 'BEGIN { print (r <= 0.5 ? "met" : "NOT met") }')
    verdict3b=$(awk -v d="$delta3" 'BEGIN { print (d <= 0.1 ? "met" : "NOT met") }')
    ansible_version=$(LC_ALL=C.UTF-8 "$ANSIBLE_VENV/bin/ansible" --version | awk 'NR == 1')
    podman_coll=$(cat "$ANSIBLE_VENV"/lib/python3*/site-packages/ansible_collections/containers/podman/MANIFEST.json 2>/dev/null |
        "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["collection_info"]["version"])' 2>/dev/null || true)
else
    ansible_note='not run: no ANSIBLE_VENV (a venv holding the ansible package) was given'
    [ "$ANSIBLE_RUNS" -gt 0 ] || ansible_note='not run: ANSIBLE_RUNS=0'
fi
elapsed=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

# -- report ------------------------------------------------------------------------------------

echo
bench_table "$work/run1-sorted.tsv" --baseline podman
echo "ctr run / podman run = ${ratio1}x (goal <= 0.1x: $verdict1); ${floor_note:-floor: $floor}"
echo "imports in one ctr run: ${imp_total} ms (ctr's own modules ${imp_ctr} ms; slowest single module $imp_top)"
echo "phases of one ctr run (cProfile): $phases"
if [ "$DETACHED" -gt 0 ]; then
    echo
    bench_table "$work/run2.tsv" --baseline podman
    echo "start all $DETACHED: ctr ${t2_total[ctr]} s, podman ${t2_total[podman]} s; remove all: ctr ${rm2_ctr} s, podman ${rm2_podman} s"
    echo "PSS per container: ctr monitor ${ctr_pss_each} KiB (RSS ${ctr_rss_each}), conmon ${conmon_pss_each} KiB (RSS ${conmon_rss_each}): ${pss_ratio}x (goal <= 1x: $verdict2)"
    echo "PSS of an idle python3 -S (the least a Python monitor weighs): ${bare_pss_each} KiB"
fi
if [ -s "$work/run3.tsv" ]; then
    echo
    bench_table "$work/run3.tsv" --baseline podman_new
    echo "ctr_container new / podman_container new = ${ratio3}x (goal <= 0.5x: $verdict3a); repeat - command: true = ${delta3} s (goal <= 0.1 s: $verdict3b)"
else
    echo "Ansible: $ansible_note"
fi
echo "total time ${elapsed}s"

[ -n "$DOC" ] || exit 0
version() { "$@" 2>/dev/null | awk 'NR == 1' || echo 'not installed'; }
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
engine=$(cd "$repo" && cat plugins/module_utils/ctr/*.py plugins/module_utils/ctr/runtime/*.py | sha256sum | cut -c1-12)
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'none yet')
md_table() { "$PYTHON" "$repo/bench/benchdoc.py" table "$@" --markdown | sed 's/| CPU s (median) |/| CPU s (median, with children) |/'; }
{
    echo "## $TITLE"
    echo
    echo "Goals (issue 3): \`ctr run --rm\` of \`/bin/true\` within **0.1x** of \`podman run --rm\`; a"
    echo "monitor's PSS per running container **no more than conmon's**; an Ansible start of a new"
    echo "container within **0.5x** of \`podman_container\`'s, and its unchanged repeat within **0.1 s** of"
    echo "an \`ansible.builtin.command: true\` task."
    echo
    echo "Results: **ctr run = ${ratio1}x podman run: goal $verdict1.**"
    if [ "$DETACHED" -gt 0 ]; then
        echo "**Monitor PSS = ${pss_ratio}x conmon's (${ctr_pss_each} vs ${conmon_pss_each} KiB): goal $verdict2.**"
    fi
    if [ -s "$work/run3.tsv" ]; then
        echo "**ctr_container new = ${ratio3}x podman_container: goal $verdict3a; repeat - command: true = ${delta3} s: goal $verdict3b.**"
    else
        echo "Ansible tasks: $ansible_note."
    fi
    echo
    echo "### 1. \`run --rm --network none busybox /bin/true\`"
    echo
    md_table "$work/run1-sorted.tsv" --baseline podman
    echo
    echo "Wall-clock seconds, $RUNS rounds, every command once a round, the order reversed every other"
    echo "round, after one untimed run of each. ctr runs as \`python3 -m ctr --root R run --rm\` (network"
    echo "none by default); podman with \`--pull=never --network none\` and runc, on a store of its own"
    echo "(overlay) loaded from \`ctr save\` of the same image. The floor runs a bundle that \`umoci unpack\`"
    echo "made from our store (args \`/bin/true\`, no terminal, umoci's namespaces: a new netns too)."
    [ -z "$floor_note" ] || echo "${floor_note/runc is the floor/runc is the floor.}"
    echo
    med() { "$PYTHON" -c 'import statistics, sys
print("%.0f" % (1000 * statistics.median(float(l.split("\t")[2]) for l in open(sys.argv[1]) if l.split("\t")[0] == sys.argv[2])))' \
        "$work/run1-sorted.tsv" "$1"; }
    echo "Where a \`ctr run\` spends its time (medians, ms): the interpreter starts in $(med python)"
    echo "(\`$PYTHON -c pass\`), $(med python_s) without \`site\` (\`-S\`); ctr under \`-S\` takes $(med ctr_s) ($(med ctr) with"
    echo "\`site\`)."
    echo "Compiling ctr's modules from source every run (a Python that may not write .pyc, like"
    echo "Ansible's zipped module payloads) costs $(($(med ctr_nopyc) - $(med ctr))). The floor (\`$floor run\`) takes $(med floor): the namespaces,"
    echo "mounts and exec themselves are cheap; the rest of ctr's time is Python start-up and work."
    echo "The goal, 0.1x podman, is $(($(med podman) / 10)) ms here: below what \`$floor run\` alone takes on this host."
    echo
    echo "One \`ctr run\` imports modules for ${imp_total} ms (\`-X importtime\`, self times summed),"
    echo "${imp_ctr} ms of it in ctr's own modules; the slowest single import: \`$imp_top\`."
    echo "Its phases under cProfile (one run, the profiler inflates them somewhat): $phases."
    if [ "$DETACHED" -gt 0 ]; then
        echo
        echo "### 2. $DETACHED detached containers (\`run -d busybox sleep 600\`)"
        echo
        md_table "$work/run2.tsv" --baseline podman
        echo
        echo "| | ctr | podman |"
        echo "|---|---:|---:|"
        echo "| start all $DETACHED, one after the other (s) | ${t2_total[ctr]} | ${t2_total[podman]} |"
        echo "| remove all $DETACHED (s) | ${rm2_ctr} | ${rm2_podman} |"
        echo "| PSS per container of its monitor (KiB) | ${ctr_pss_each} | ${conmon_pss_each} |"
        echo "| RSS per container of its monitor (KiB) | ${ctr_rss_each} | ${conmon_rss_each} |"
        echo
        echo "For scale: $DETACHED idle \`python3 -S\` processes that imported only os, json, signal and time"
        echo "weigh ${bare_pss_each} KiB PSS each: the least any monitor written in Python could weigh."
        echo
        echo "PSS is the \`Pss:\` line of \`/proc/PID/smaps_rollup\` summed over the $DETACHED monitors"
        echo "(ctr: \`MonitorPid\` of each state.json; podman: \`{{.State.ConmonPid}}\`), divided by $DETACHED;"
        echo "the containers' own processes are not counted. ctr removes with one \`ctr rm -f\` per"
        echo "container, podman with one \`podman rm -f -t 0\` of all."
    fi
    echo
    echo "### 3. Ansible tasks"
    echo
    if [ -s "$work/run3.tsv" ]; then
        md_table "$work/run3.tsv" --baseline podman_new |   # no CPU column: tasks run in Ansible's workers
            awk 'BEGIN { FS = OFS = "|" } { for (i = 7; i < NF; i++) $i = $(i + 1); NF--; print }'
        echo
        echo "Seconds from a task's start to its result (a callback), $ANSIBLE_RUNS playbook runs on"
        echo "localhost (connection local), ctr tasks before podman's in odd runs and after in even ones;"
        echo "$ansible_version, containers.podman ${podman_coll:-?}"
        echo "(from the \`ansible\` package, in a venv of its own); every module runs under \`$PYTHON\`, the"
        echo "managed host's interpreter (\`ansible_python_interpreter\`). A task that does nothing"
        echo "(\`command: true\`, the first and last task of each run) already takes $(bench_ratio "$work/run3.tsv" command_true podman_new)x"
        echo "podman_container's new-container task: Ansible's own cost per task (fork, AnsiballZ payload,"
        echo "a fresh interpreter) is most of both modules' time. AnsiballZ ships .py sources in a zip, where"
        echo "Python writes no .pyc: the engine keeps its compiled modules in its bytecode cache (here"
        echo "\`CTR_PYCACHE\` in the temp dir), so only the first run compiles them (the no-.pyc row of case 1)."
        echo "The first task of a module in a playbook also makes its AnsiballZ payload (Ansible parses"
        echo "every module_utils file the module imports, then caches the zip for the rest of the run):"
        echo "a task on a missing container, before the timed ones, pays that for each module (the"
        echo "\"first task\" rows), so the new and repeat rows time the modules' own work."
        echo
        echo "| PSS per container of its monitor, the container started by an Ansible task ($APSS of each) | ctr | conmon |"
        echo "|---|---:|---:|"
        echo "| KiB | ${apss_ctr} | ${apss_conmon} |"
        echo
        echo "ctr's monitor is a fresh \`python3 -I -S\` that imported the engine modules a monitor needs, not"
        echo "a fork of the module process (whose heap, Ansible's \`module_utils\` included, it would keep for"
        echo "the container's lifetime: about 18 MB); conmon is the same binary whoever starts it. The fresh"
        echo "interpreter boots (about 30 ms of CPU) while the module plans and creates the container; on"
        echo "this 2-core machine the \"new container\" task pays part of it."
    else
        echo "${ansible_note^}. Give \`ANSIBLE_VENV=DIR\` (a venv with the \`ansible\` package) or"
        echo "\`ANSIBLE_INSTALL=1\` to time them."
    fi
    echo
    echo "Machine: $(nproc) CPUs ($cpu_model), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM,"
    echo "kernel $(uname -r), $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release);"
    echo "$("$PYTHON" -c 'import sys; print("Python " + sys.version.split()[0])'), podman $(version podman version --format '{{.Client.Version}}'),"
    echo "$(version runc --version), conmon $(version conmon --version | awk '{ print $3 }'), $(version umoci --version)."
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, engine sources sha256 $engine…;"
    echo "whole script ${elapsed}s. Rerun: \`bench/container_run.sh\` (see bench/README.md)."
} | "$PYTHON" "$repo/bench/benchdoc.py" section "$DOC" "$TITLE"
log "wrote the section \"$TITLE\" of $DOC"
