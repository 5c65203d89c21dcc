#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage (as root, from anywhere; no network beyond this host):
#   bench/network.sh
#
# Bridge networking, timed side by side (issue 4, section 5):
#   1. `ctr run --rm IMG /bin/true` on the default network vs `podman run --rm` on podman's default
#      network (netavark's bridge). Goal: ctr <= 0.2x podman's median.
#   2. Attaching a container to a network: `run -d IMG sleep` on the default bridge minus the same with
#      `--network none`, for ctr and for podman. Goal: ctr's difference <= 0.5x podman's.
#   3. Throughput (iperf3, the host's, run in the container with the host's /usr and /lib read-only)
#      through a published port on 127.0.0.1 vs straight to the container's address. Goal: >= 0.9x.
# Results go to the section "## Networks: run, attach, throughput" of docs/benchmarks.md.
#
# Environment:
#   RUNS=10             timed rounds of cases 1 and 2 (each round runs every command once)
#   IPERF_RUNS=3        iperf3 rounds of case 3 (each: published, then direct, or the reverse)
#   IPERF_SECONDS=3     seconds per iperf3 run
#   BENCH_DOC=FILE      results document (default docs/benchmarks.md); BENCH_DOC= (empty) skips it
#   PYTHON=/usr/bin/python3  the interpreter that runs `python3 -m ctr`
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
RUNS=${RUNS:-10}
IPERF_RUNS=${IPERF_RUNS:-3}
IPERF_SECONDS=${IPERF_SECONDS:-3}
DOC=${BENCH_DOC-$repo/docs/benchmarks.md}
default_python
TITLE='Networks: run, attach, throughput'
BUSYBOX=${BUSYBOX:-/bin/busybox}
IMG=docker.io/library/busybox:latest

log() { printf '%s\n' "$*" >&2; }
die() { log "network: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die 'run me as root'
for tool in "$PYTHON" podman iperf3 nft ip "$BUSYBOX"; do
    command -v "$tool" >/dev/null || die "$tool is not installed (make deps)"
done
"$PYTHON" -c 'import pyroute2' 2>/dev/null || die "pyroute2 is missing for $PYTHON (Debian: python3-pyroute2)"
[ -n "${EPOCHREALTIME:-}" ] || die 'bash 5 or later is needed (EPOCHREALTIME)'
bench_work net

podman_config

cleanup() {
    set +e
    remove_containers "$store"
    podman rm -f -a -t 0 >/dev/null 2>&1
    "$PYTHON" - "$store" <<'EOF' >/dev/null 2>&1
import sys
from ctr.network import endpoints, networks
for n in networks.NetworkStore(sys.argv[1]).list():
    endpoints.remove_network(sys.argv[1], n.name, force=True)
EOF
    release_work
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$EPOCHREALTIME
log "building busybox from $BUSYBOX into a temp store ..."
busybox_image

# warm-up (untimed): layers unpacked, bytecode cached, both default bridges made
ctr run --rm busybox /bin/true
ctr run --rm --network none busybox /bin/true
podman run --rm --pull=never "$IMG" /bin/true
podman run --rm --pull=never --network none "$IMG" /bin/true

bench_ratio() { "$PYTHON" "$repo/bench/benchdoc.py" ratio "$@"; }
med() { "$PYTHON" -c 'import statistics, sys
print("%.3f" % statistics.median(float(l.split("\t")[2]) for l in open(sys.argv[1]) if l.split("\t")[0] == sys.argv[2]))' "$1" "$2"; }

# -- 1. run --rm on the default network, and 2. attach (run -d bridge minus run -d none) ------------

log "cases 1 and 2: $RUNS rounds"
ids=(ctr_rm podman_rm ctr_d_bridge ctr_d_none podman_d_bridge podman_d_none)
declare -A label=(
    [ctr_rm]='ctr run --rm busybox /bin/true (default network ctr)'
    [podman_rm]='podman run --rm --pull=never busybox /bin/true (default network)'
    [ctr_d_bridge]='ctr run -d busybox sleep (default network)'
    [ctr_d_none]='ctr run -d --network none busybox sleep'
    [podman_d_bridge]='podman run -d busybox sleep (default network)'
    [podman_d_none]='podman run -d --network none busybox sleep'
)
seq_no=0
c_ctr_rm() { ctr run --rm busybox /bin/true; }
c_podman_rm() { podman run --rm --pull=never "$IMG" /bin/true; }
c_ctr_d_bridge() { ctr run -d --name "b$seq_no" busybox sleep 600; }
c_ctr_d_none() { ctr run -d --network none --name "n$seq_no" busybox sleep 600; }
c_podman_d_bridge() { podman run -d --pull=never --name "b$seq_no" "$IMG" sleep 600; }
c_podman_d_none() { podman run -d --pull=never --network none --name "n$seq_no" "$IMG" sleep 600; }
: >"$work/run.tsv"
for ((round = 1; round <= RUNS; round++)); do
    order=("${ids[@]}")
    if ((round % 2 == 0)); then order=(podman_d_none podman_d_bridge ctr_d_none ctr_d_bridge podman_rm ctr_rm); fi
    for id in "${order[@]}"; do
        seq_no=$((seq_no + 1))
        timed "$work/run.tsv" "$id" "${label[$id]}" "c_$id"
    done
    # the detached ones go, untimed
    for name in $(ctr ps -q); do ctr rm -f "$name" >/dev/null; done
    podman rm -f -a -t 0 >/dev/null
done
for id in "${ids[@]}"; do awk -F '\t' -v id="$id" '$1 == id' "$work/run.tsv"; done >"$work/run-sorted.tsv"
ratio1=$(bench_ratio "$work/run-sorted.tsv" ctr_rm podman_rm)
verdict1=$(awk -v r="$ratio1" 'BEGIN { print (r <= 0.2 ? "met" : "NOT met") }')
attach_ctr=$(awk -v a="$(med "$work/run-sorted.tsv" ctr_d_bridge)" -v b="$(med "$work/run-sorted.tsv" ctr_d_none)" \
    'BEGIN { printf "%.3f", a - b }')
attach_podman=$(awk -v a="$(med "$work/run-sorted.tsv" podman_d_bridge)" -v b="$(med "$work/run-sorted.tsv" podman_d_none)" \
    'BEGIN { printf "%.3f", a - b }')
ratio2=$(awk -v a="$attach_ctr" -v b="$attach_podman" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
verdict2=$(awk -v r="$ratio2" -v b="$attach_podman" 'BEGIN { print (b > 0 && r <= 0.5 ? "met" : "NOT met") }')
log "run --rm: ctr/podman = ${ratio1}x; attach: ctr ${attach_ctr} s, podman ${attach_podman} s (${ratio2}x)"

# where the attach goes (one untimed run under cProfile)
"$PYTHON" -m cProfile -o "$work/run.prof" -m ctr --root "$store" run --rm busybox /bin/true >/dev/null
phases=$("$PYTHON" - "$work/run.prof" <<'EOF'
import pstats, sys
stats = pstats.Stats(sys.argv[1]).stats
want = [('cli.py', 'main', 'whole command'), ('endpoints.py', 'attach', 'attach'),
        ('endpoints.py', '_in_child', 'of which links and addresses (a child process, pyroute2 codec)'),
        ('nft.py', 'apply', 'nft runs (attach and detach)'), ('monitor.py', 'spawn', 'start (fork + wait for the monitor)')]
parts = []
for fname, func, text in want:
    cum = [v[3] for (f, _, n), v in stats.items() if n == func and f.endswith('/' + fname)]
    if cum:
        parts.append('%s %.0f ms' % (text, 1000 * sum(cum)))
print('; '.join(parts))
EOF
)

# -- 3. throughput: published port vs direct -----------------------------------------------------------

log "case 3: iperf3, $IPERF_RUNS rounds of $IPERF_SECONDS s each way"
binds=(-v /usr:/usr:ro -v /lib:/lib:ro)
[ -d /lib64 ] && binds+=(-v /lib64:/lib64:ro)
pub=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ctr run -d --name iperf "${binds[@]}" -p "127.0.0.1:$pub:5201" busybox /usr/bin/iperf3 -s -p 5201 >/dev/null
read -r ctr_ip bridge subnet < <("$PYTHON" - "$store" <<'EOF'
import json, sys
from ctr.runtime.lifecycle import Runtime
from ctr.network.networks import NetworkStore
rt = Runtime(sys.argv[1])
ns = rt.inspect(rt.get('iperf'))['NetworkSettings']
net = NetworkStore(sys.argv[1]).get('ctr')
print(ns['IPAddress'], net.bridge, net.subnet)
EOF
)
# the network rule: send to the container's subnet only when it is routed on its bridge
ip -o route show "$subnet" | grep -q "dev $bridge " || die "$subnet is not routed on $bridge; not sending there"
for _ in $(seq 50); do iperf3 -c 127.0.0.1 -p "$pub" -t 1 >/dev/null 2>&1 && break; sleep 0.1; done
gbits() { "$PYTHON" -c 'import json, sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'; }
: >"$work/iperf.tsv"
for ((round = 1; round <= IPERF_RUNS; round++)); do
    for way in $( ((round % 2)) && echo "published direct" || echo "direct published"); do
        if [ "$way" = published ]; then target=(127.0.0.1 -p "$pub"); else target=("$ctr_ip" -p 5201); fi
        rate=$(iperf3 -c "${target[@]}" -t "$IPERF_SECONDS" -J | gbits)
        printf '%s\t%s\n' "$way" "$rate" >>"$work/iperf.tsv"
        log "  $way: $rate Gbit/s"
    done
done
ctr rm -f iperf >/dev/null
read -r thr_pub thr_direct < <("$PYTHON" - "$work/iperf.tsv" <<'EOF'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    way, rate = line.split()
    rates.setdefault(way, []).append(float(rate))
print('%.2f %.2f' % (statistics.median(rates['published']), statistics.median(rates['direct'])))
EOF
)
ratio3=$(awk -v a="$thr_pub" -v b="$thr_direct" 'BEGIN { printf "%.2f", a / b }')
verdict3=$(awk -v r="$ratio3" 'BEGIN { print (r >= 0.9 ? "met" : "NOT met") }')
elapsed=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

echo
"$PYTHON" "$repo/bench/benchdoc.py" table "$work/run-sorted.tsv" --baseline podman_rm
echo "run --rm: ctr/podman = ${ratio1}x (goal <= 0.2x: $verdict1)"
echo "attach: ctr ${attach_ctr} s, podman ${attach_podman} s = ${ratio2}x (goal <= 0.5x: $verdict2)"
echo "throughput: published ${thr_pub} Gbit/s, direct ${thr_direct} Gbit/s = ${ratio3}x (goal >= 0.9x: $verdict3)"
echo "phases (cProfile): $phases"
echo "total time ${elapsed}s"

[ -n "$DOC" ] || exit 0
version() { "$@" 2>/dev/null | awk 'NR == 1' || echo 'not installed'; }
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'none yet')
{
    echo "## $TITLE"
    echo
    echo "Goals (issue 4): \`ctr run --rm\` on the default network within **0.2x** of \`podman run --rm\` on"
    echo "its default network; attaching a container to a network within **0.5x** of podman's; a"
    echo "published port's throughput **at least 0.9x** of the direct path."
    echo
    echo "Results: **run = ${ratio1}x podman: goal $verdict1. Attach = ${ratio2}x podman's"
    echo "(${attach_ctr} s vs ${attach_podman} s): goal $verdict2. Published port = ${ratio3}x direct: goal $verdict3.**"
    echo
    "$PYTHON" "$repo/bench/benchdoc.py" table "$work/run-sorted.tsv" --baseline podman_rm --markdown |
        sed 's/| CPU s (median) |/| CPU s (median, with children) |/'
    echo
    echo "Wall-clock seconds, $RUNS rounds, every command once a round, the order reversed every other round,"
    echo "after one untimed run of each. Attach is the median of \`run -d\` on the default network minus the"
    echo "median of \`run -d --network none\` (create + start: namespace, address, veth pair, rules, hosts"
    echo "file), for each engine; podman uses netavark on its default network \`podman\`."
    echo "Where ctr's run goes (cProfile, one run; the profiler inflates each figure somewhat): $phases."
    echo
    echo "| iperf3 to the container, $IPERF_SECONDS s, median of $IPERF_RUNS | Gbit/s |"
    echo "|---|---:|"
    echo "| through the published port 127.0.0.1:PORT (nftables DNAT, masquerade) | $thr_pub |"
    echo "| straight to the container's address on the bridge | $thr_direct |"
    echo
    echo "The server is the host's iperf3 run inside the container (the host's /usr and /lib bound"
    echo "read-only into the busybox image), the client on the host; both ends share the 2 CPUs."
    echo
    echo "Machine: $(nproc) CPUs, kernel $(uname -r); $("$PYTHON" -c 'import sys; print("Python " + sys.version.split()[0])'),"
    echo "podman $(version podman version --format '{{.Client.Version}}'), netavark $(version /usr/lib/podman/netavark --version | awk '{ print $2 }'),"
    echo "$(version nft --version), $(version iperf3 --version | awk '{ print $1, $2 }')."
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit; whole script ${elapsed}s. Rerun: \`bench/network.sh\`."
} | "$PYTHON" "$repo/bench/benchdoc.py" section "$DOC" "$TITLE"
log "wrote the section \"$TITLE\" of $DOC"
