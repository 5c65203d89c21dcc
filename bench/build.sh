#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage (as root, from anywhere; no network needed):
#   bench/build.sh [N]          N timed rounds of every case (default 5, or $RUNS)
#
# Dockerfile builds and container commits, timed side by side with podman (and buildah bud when
# installed), the same busybox base image on every side, RUN with network none, runc:
#   1. cold build of examples/helloworld: ctr into a fresh store holding only the (unpacked) base
#      image; podman/buildah with --layers --no-cache, every image the build made removed after each
#      run (only the base image is left). Goal: ctr <= 0.7x podman's median.
#   2. cached rebuild of examples/helloworld, nothing changed (every step a cache hit, checked).
#      Goal: <= 0.1x podman's.
#   3. cold build of `FROM busybox` + `COPY . /data` of a 200 MiB context (200 files of 1 MiB from
#      /dev/urandom, made once under bench/data/build-context, gitignored). Goal: <= 0.8x podman's.
#   4. cached rebuild of that context, unchanged (for information, no goal).
#   5. commit of a stopped container that wrote 200 MiB (200 x 1 MiB from /dev/urandom) vs `podman commit`
#      of the same container on podman's side; the new image is removed after each run, so every
#      commit really writes its layer. Goal: <= 0.8x. Also, for information: commit + `ctr unpack`
#      (the layer unpacked, ready to run, as podman's commit leaves it).
# Then one run of each ctr case under cProfile: where our time goes. Results go to the section
# "## Builds and commits" of docs/benchmarks.md.
#
# Environment:
#   RUNS=5              timed rounds when N is not given
#   BUILDAH=auto        time `buildah bud` too when installed (0: never), on a store of its own
#   PROFILE=1           one cProfile run of each ctr case after the timed rounds (0: skip)
#   BENCH_DATA=DIR      where the 200 MiB context is made and kept (default bench/data)
#   BENCH_DOC=FILE      results document (default docs/benchmarks.md); BENCH_DOC= (empty) skips it
#   PYTHON=/usr/bin/python3  the interpreter that runs `python3 -m ctr`
#   TMPDIR=/var/tmp     parent of the temp dir holding every store (removed on exit; ~2 GB at most)
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
RUNS=${1:-${RUNS:-5}}
BUILDAH=${BUILDAH:-auto}
PROFILE=${PROFILE:-1}
DATA=${BENCH_DATA:-$repo/bench/data}
DOC=${BENCH_DOC-$repo/docs/benchmarks.md}
default_python
TITLE='Builds and commits'
BUSYBOX=${BUSYBOX:-/bin/busybox}
IMG=docker.io/library/busybox:latest
CTX_FILES=200           # files of 1 MiB in the big context, and in the committed container
HELLO=$repo/examples/helloworld
HELLO_STEPS=6           # instructions after FROM in its Dockerfile: each a cache hit in a rebuild

log() { printf '%s\n' "$*" >&2; }
die() { log "build: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die 'run me as root (builds need mounts and namespaces)'
case $RUNS in '' | *[!0-9]*) die "N (or RUNS) must be a number (got \"$RUNS\")" ;; esac
[ "$RUNS" -gt 0 ] || die 'N must be at least 1'
for tool in "$PYTHON" podman runc "$BUSYBOX"; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ -n "${EPOCHREALTIME:-}" ] || die 'bash 5 or later is needed (EPOCHREALTIME)'
[ -f "$HELLO/Dockerfile" ] || die "$HELLO/Dockerfile is missing"
[ "$(grep -c '^[A-Z]' "$HELLO/Dockerfile")" = $((HELLO_STEPS + 1)) ] ||
    die "$HELLO/Dockerfile no longer has $HELLO_STEPS instructions after FROM: update HELLO_STEPS"
use_buildah=0
if [ "$BUILDAH" != 0 ] && command -v buildah >/dev/null; then
    use_buildah=1
elif [ "$BUILDAH" = 1 ]; then
    die 'BUILDAH=1 but buildah is not installed (apt-get install buildah)'
fi

bench_work build                # $store: the set-up store (busybox for `podman load`), then the warm one
base=$work/base                 # busybox only, unpacked: copied into a fresh store for each cold build
cold=$work/cold

podman_config
pod() { podman --runtime runc "$@"; }
# buildah on a store of its own, so neither peer finds the other's cache
bah() { CONTAINERS_STORAGE_CONF=$work/buildah/storage.conf buildah "$@"; }

cleanup() {
    set +e
    remove_containers "$store" "$cold"
    podman rm -f -a -t 0 >/dev/null 2>&1
    if command -v buildah >/dev/null; then
        buildah rm -a >/dev/null 2>&1           # build containers a killed `podman build` left behind
        [ -f "$work/buildah/storage.conf" ] && bah rm -a >/dev/null 2>&1
    fi
    release_work                                 # detaches every mount under $work, then removes it
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$EPOCHREALTIME
# the code timed is the code as it is now (a working tree may change while this runs)
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'none yet')
[ -z "$(git -C "$repo" status --porcelain -- plugins/module_utils/ctr 2>/dev/null)" ] ||
    commit="$commit + uncommitted changes"
engine=$(cd "$repo" && cat plugins/module_utils/ctr/*.py plugins/module_utils/ctr/runtime/*.py | sha256sum | cut -c1-12)

# -- set-up ---------------------------------------------------------------------------------------

ctx=$DATA/build-context
recipe="$CTX_FILES files x 1 MiB from /dev/urandom, v1"
if [ "$(cat "$DATA/build-context.stamp" 2>/dev/null)" != "$recipe" ]; then
    log "making the ${CTX_FILES} MiB build context in $ctx (once) ..."
    rm -rf "$ctx" "$DATA/build-context.stamp"
    mkdir -p "$ctx"
    for ((i = 0; i < CTX_FILES; i++)); do
        head -c 1048576 /dev/urandom >"$ctx/$(printf 'f%03d.bin' "$i")"
    done
    echo "$recipe" >"$DATA/build-context.stamp"
fi
ctx_bytes=$(du -sb "$ctx" | cut -f1)
mkdir -p "$work/ctx"
printf 'FROM busybox\nCOPY . /data\n' >"$work/ctx/Dockerfile"      # outside the context: not copied

log "building busybox from $BUSYBOX into temp stores ..."
busybox_image                                   # $store and podman's store
rootfs=$work/rootfs
ctr_at "$base" import --change 'CMD ["sh"]' "$rootfs" busybox:latest >/dev/null
ctr_at "$base" unpack busybox:latest >/dev/null     # as podman's base layer is: unpacked
rm -rf "$store"
cp -a "$base" "$store"
if [ "$use_buildah" = 1 ]; then
    mkdir -p "$work/buildah"
    sed "s#$work/podman/#$work/buildah/#" "$work/podman/storage.conf" >"$work/buildah/storage.conf"
    bah pull -q "docker-archive:$work/busybox.tar" >/dev/null
    [ "$(bah images -q "$IMG")" = "$(podman images -q "$IMG")" ] || die 'buildah got another busybox than podman'
fi

# -- timing helpers -------------------------------------------------------------------------------

: >"$work/results.tsv"
bench_table() { "$PYTHON" "$repo/bench/benchdoc.py" table "$@"; }

# cache_hits N: the last timed output says "Using cache" exactly N times (ctr, podman and buildah all do)
cache_hits() {
    local n
    n=$(grep -c 'Using cache' "$work/out" || true)
    [ "$n" = "$1" ] || { cat "$work/out" >&2; die "expected $1 cache hits, got $n: $2"; }
}

# only_base ENGINE: nothing but the base image left in podman's (or buildah's) store
only_base() {
    local n
    n=$("$@" images -a -q | wc -l)
    [ "$n" = 1 ] || { "$@" images -a >&2; die "$* images: $n images where only busybox should be"; }
}

# round ROUND ID...: each ID's prep_ID (untimed), then ID timed, then post_ID (untimed); the order
# of the IDs reversed in even rounds
round() {
    local r=$1 id i
    shift
    local ids=("$@")
    if ((r % 2 == 0)); then
        ids=()
        for ((i = $# ; i > 0; i--)); do ids+=("${!i}"); done
    fi
    for id in "${ids[@]}"; do
        "prep_$id"
        sync                                    # one case's dirty pages are not the next one's fsync
        timed "$work/results.tsv" "$id" "${label[$id]}" "run_$id"
        "post_$id"
    done
}

declare -A label
engines=(ctr podman)
[ "$use_buildah" = 1 ] && engines+=(buildah)
fresh_store() { rm -rf "$cold" && cp -a "$base" "$cold"; }

# -- 1. cold build of helloworld ------------------------------------------------------------------

label[ctr_hello_cold]='ctr build examples/helloworld, cold (fresh store, base image only)'
label[podman_hello_cold]='podman build --layers --no-cache examples/helloworld'
label[buildah_hello_cold]='buildah bud --layers --no-cache examples/helloworld'
prep_ctr_hello_cold() { fresh_store; }
run_ctr_hello_cold() { ctr_at "$cold" build --network none -t bench-hello "$HELLO"; }
post_ctr_hello_cold() { cache_hits 0 'ctr, cold'; rm -rf "$cold"; }
prep_podman_hello_cold() { :; }
run_podman_hello_cold() { pod build --layers --no-cache --pull=never --network none -t bench-hello "$HELLO"; }
post_podman_hello_cold() {
    cache_hits 0 'podman, cold'
    podman rmi -f bench-hello >/dev/null && podman image prune -f >/dev/null && only_base podman
}
prep_buildah_hello_cold() { :; }
run_buildah_hello_cold() {
    bah bud --runtime runc --layers --no-cache --pull-never --network none -t bench-hello "$HELLO"
}
post_buildah_hello_cold() {
    cache_hits 0 'buildah, cold'
    bah rmi -f bench-hello >/dev/null && bah rmi --prune >/dev/null && only_base bah
}

log "case 1: cold build of examples/helloworld, $RUNS rounds"
for ((r = 1; r <= RUNS; r++)); do round "$r" "${engines[@]/%/_hello_cold}"; done

# -- 2. cached rebuild of helloworld --------------------------------------------------------------

label[ctr_hello_cached]='ctr build examples/helloworld, cached (no change)'
label[podman_hello_cached]='podman build --layers examples/helloworld, cached'
label[buildah_hello_cached]='buildah bud --layers examples/helloworld, cached'
prep_ctr_hello_cached() { :; }
run_ctr_hello_cached() { ctr build --network none -t bench-hello "$HELLO"; }
post_ctr_hello_cached() { cache_hits "$HELLO_STEPS" 'ctr, cached'; }
prep_podman_hello_cached() { :; }
run_podman_hello_cached() { pod build --layers --pull=never --network none -t bench-hello "$HELLO"; }
post_podman_hello_cached() { cache_hits "$HELLO_STEPS" 'podman, cached'; }
prep_buildah_hello_cached() { :; }
run_buildah_hello_cached() { bah bud --runtime runc --layers --pull-never --network none -t bench-hello "$HELLO"; }
post_buildah_hello_cached() { cache_hits "$HELLO_STEPS" 'buildah, cached'; }

log "case 2: cached rebuild of examples/helloworld, $RUNS rounds (after one untimed build)"
ctr build --network none -t bench-hello "$HELLO" >/dev/null
pod build --layers --pull=never --network none -t bench-hello "$HELLO" >/dev/null
[ "$use_buildah" = 0 ] || bah bud --runtime runc --layers --pull-never --network none -t bench-hello "$HELLO" >/dev/null
for ((r = 1; r <= RUNS; r++)); do round "$r" "${engines[@]/%/_hello_cached}"; done
# what a cached rebuild's floor is made of: the interpreter's start, and the imports (-X importtime, one run)
start_ms=$(for _ in 1 2 3 4 5; do
    t0=$EPOCHREALTIME; "$PYTHON" -c pass; awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print 1000 * (b - a) }'
done | sort -n | awk 'NR == 3 { printf "%.0f", $1 }')
"$PYTHON" -X importtime -m ctr --root "$store" build --network none -t bench-hello "$HELLO" 2>"$work/importtime" >/dev/null
read -r imp_total imp_ctr imp_top < <(awk -F '|' '
    /^import time:/ && $1 !~ /self/ {
        self = $1; sub(/.*:/, "", self); self += 0; name = $3; gsub(/^ +| +$/, "", name)
        total += self; if (name ~ /^ctr(\.|$)/) mine += self
        n++; selfs[n] = self; names[n] = name
    }
    END {
        for (k = 0; k < 3; k++) {          # the three slowest modules by self time
            best = 0; at = 0
            for (i = 1; i <= n; i++) if (selfs[i] > best) { best = selfs[i]; at = i }
            if (at) { top = top (top ? "," : "") names[at] "(" sprintf("%.0f", best / 1000) "ms)"; selfs[at] = -1 }
        }
        printf "%.0f %.0f %s\n", total / 1000, mine / 1000, top
    }' "$work/importtime")
log "  a cached rebuild imports for ${imp_total} ms (ctr's modules ${imp_ctr} ms; slowest $imp_top); python3 -c pass: ${start_ms} ms"

# -- 3. cold build of a 200 MiB context -----------------------------------------------------------

ctx_mib=$((ctx_bytes / 1048576))
label[ctr_ctx_cold]="ctr build, COPY ${ctx_mib} MiB context, cold (fresh store)"
label[podman_ctx_cold]="podman build --layers --no-cache, COPY ${ctx_mib} MiB context"
label[buildah_ctx_cold]="buildah bud --layers --no-cache, COPY ${ctx_mib} MiB context"
prep_ctr_ctx_cold() { fresh_store; }
run_ctr_ctx_cold() { ctr_at "$cold" build --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx"; }
post_ctr_ctx_cold() { cache_hits 0 'ctr, context, cold'; rm -rf "$cold"; }
prep_podman_ctx_cold() { :; }
run_podman_ctx_cold() {
    pod build --layers --no-cache --pull=never --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx"
}
post_podman_ctx_cold() {
    cache_hits 0 'podman, context, cold'
    podman rmi -f bench-ctx >/dev/null && podman image prune -f >/dev/null && only_base podman
}
prep_buildah_ctx_cold() { :; }
run_buildah_ctx_cold() {
    bah bud --runtime runc --layers --no-cache --pull-never --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx"
}
post_buildah_ctx_cold() {
    cache_hits 0 'buildah, context, cold'
    bah rmi -f bench-ctx >/dev/null && bah rmi --prune >/dev/null && only_base bah
}

log "case 3: cold build of a ${ctx_mib} MiB context, $RUNS rounds"
# helloworld's images go first, so each side's store holds only the base image again
rm -rf "$store" && cp -a "$base" "$store"
podman rmi -f bench-hello >/dev/null && podman image prune -f >/dev/null && only_base podman
[ "$use_buildah" = 0 ] || { bah rmi -f bench-hello >/dev/null && bah rmi --prune >/dev/null && only_base bah; }
for ((r = 1; r <= RUNS; r++)); do round "$r" "${engines[@]/%/_ctx_cold}"; done

# -- 4. cached rebuild of the 200 MiB context -----------------------------------------------------

label[ctr_ctx_cached]="ctr build, ${ctx_mib} MiB context, cached (no change)"
label[podman_ctx_cached]="podman build --layers, ${ctx_mib} MiB context, cached"
label[buildah_ctx_cached]="buildah bud --layers, ${ctx_mib} MiB context, cached"
prep_ctr_ctx_cached() { :; }
run_ctr_ctx_cached() { ctr build --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx"; }
post_ctr_ctx_cached() { cache_hits 1 'ctr, context, cached'; }
prep_podman_ctx_cached() { :; }
run_podman_ctx_cached() { pod build --layers --pull=never --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx"; }
post_podman_ctx_cached() { cache_hits 1 'podman, context, cached'; }
prep_buildah_ctx_cached() { :; }
run_buildah_ctx_cached() {
    bah bud --runtime runc --layers --pull-never --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx"
}
post_buildah_ctx_cached() { cache_hits 1 'buildah, context, cached'; }

log "case 4: cached rebuild of the ${ctx_mib} MiB context, $RUNS rounds (after one untimed build)"
ctr build --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx" >/dev/null
pod build --layers --pull=never --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx" >/dev/null
[ "$use_buildah" = 0 ] ||
    bah bud --runtime runc --layers --pull-never --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx" >/dev/null
for ((r = 1; r <= RUNS; r++)); do round "$r" "${engines[@]/%/_ctx_cached}"; done

# -- 5. commit of a container with 200 MiB of changes ---------------------------------------------

log "case 5: commit of a stopped container that wrote ${CTX_FILES} MiB, $RUNS rounds"
rm -rf "$store" && cp -a "$base" "$store"       # the build cases' layers go: a store like podman's
podman rmi -f bench-ctx >/dev/null && podman image prune -f >/dev/null && only_base podman
# shellcheck disable=SC2016  # expanded by the container's sh
writer='mkdir /data && i=0 && while [ $i -lt '"$CTX_FILES"' ]; do head -c 1048576 /dev/urandom >/data/f$i || exit 1; i=$((i + 1)); done'
ctr run --name bench-writer --network none busybox sh -c "$writer" >/dev/null
pod run --pull=never --name bench-writer --network none "$IMG" sh -c "$writer" >/dev/null
upper_ctr=$(du -sb "$(ctr inspect bench-writer | "$PYTHON" -c 'import json, sys
print(json.load(sys.stdin)[0]["GraphDriver"]["Data"]["UpperDir"])')" | cut -f1)
upper_podman=$(du -sb "$(podman inspect -f '{{.GraphDriver.Data.UpperDir}}' bench-writer)" | cut -f1)
log "  upper dirs: ctr $upper_ctr bytes, podman $upper_podman bytes"

label[ctr_commit]="ctr commit (container with ${CTX_FILES} MiB written, stopped)"
label[podman_commit]='podman commit -q (the same on podman'"'"'s side)'
label[ctr_commit_unpack]='ctr commit + ctr unpack (layer unpacked, as podman leaves it)'
prep_ctr_commit() { :; }
run_ctr_commit() { ctr commit bench-writer bench-commit; }
post_ctr_commit() { ctr rmi bench-commit >/dev/null; }       # its blob goes too (gc): every commit writes one
prep_podman_commit() { :; }
run_podman_commit() { podman commit -q bench-writer bench-commit; }
post_podman_commit() { podman rmi bench-commit >/dev/null && only_base podman; }   # its layer too
prep_ctr_commit_unpack() { :; }
run_ctr_commit_unpack() { ctr commit bench-writer bench-commit && ctr unpack bench-commit; }
post_ctr_commit_unpack() { ctr rmi bench-commit >/dev/null; }
for ((r = 1; r <= RUNS; r++)); do round "$r" ctr_commit podman_commit ctr_commit_unpack; done
# what each layer weighs: ours as stored (gzip), podman's as it reports it (uncompressed tar)
ctr commit bench-writer bench-commit >/dev/null
commit_blob=$("$PYTHON" - "$store" <<'EOF'
import sys
from ctr.images import ImageStore
print(ImageStore(sys.argv[1]).get('bench-commit').layers[-1].size)
EOF
)
ctr rmi bench-commit >/dev/null

# -- where our time goes ----------------------------------------------------------------------------

phases=()
if [ "$PROFILE" = 1 ]; then
    log 'one cProfile run of each ctr case ...'
    profiled() {        # NAME ROOT ARGS...: one ctr command under cProfile
        local name=$1 root=$2
        shift 2
        sync
        "$PYTHON" -m cProfile -o "$work/$name.prof" -m ctr --root "$root" "$@" >"$work/out" 2>&1 ||
            { cat "$work/out" >&2; die "profiled run $name failed"; }
    }
    fresh_store
    profiled hello_cold "$cold" build --network none -t bench-hello "$HELLO"
    rm -rf "$cold"
    ctr build --network none -t bench-hello "$HELLO" >/dev/null
    profiled hello_cached "$store" build --network none -t bench-hello "$HELLO"
    fresh_store
    profiled ctx_cold "$cold" build --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx"
    rm -rf "$cold"
    ctr build --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx" >/dev/null
    profiled ctx_cached "$store" build --network none -f "$work/ctx/Dockerfile" -t bench-ctx "$ctx"
    profiled commit "$store" commit bench-writer bench-commit
    ctr rmi bench-commit >/dev/null
    for name in hello_cold hello_cached ctx_cold ctx_cached commit; do
        phases+=("$("$PYTHON" - "$work/$name.prof" <<'EOF'
import pstats, sys
stats = pstats.Stats(sys.argv[1]).stats     # (file, line, function) -> (cc, nc, tottime, cumtime, callers)

def find(file_end, func, field=3):       # the outermost of same-named functions (store.py has two writes)
    return max([v[field] for (f, _, fn), v in stats.items() if f.endswith(file_end) and fn == func] or [0])

total = find('ctr/__main__.py', '<module>')
parts = [
    ('imports', find('<frozen importlib._bootstrap>', '_find_and_load')),
    ('  of which defining %d records' % find('ctr/records.py', '_process', 1), find('ctr/records.py', '_process')),
    ('compiling regexes (at import or first use)', find('re/__init__.py', '_compile')),
    ('parse + context set-up', find('ctr/build.py', '__init__')),
    ('hashing COPY sources', find('ctr/buildcontext.py', 'digest')),
    ('COPY/WORKDIR in the overlay child', find('ctr/buildfs.py', 'apply')),
    ('RUN container', find('ctr/buildrun.py', 'run')),
    ('unpacking layers', find('ctr/store.py', 'ensure_unpacked')),
    ('packing the layer (tar, sha256, gzip, write)', find('ctr/layers.py', 'pack_tree')),
    ('  of which waiting for the deflate threads', find('concurrent/futures/_base.py', 'result')),
    ('  of which sha256 in the main thread', find('~', "<method 'update' of '_hashlib.HASH' objects>", 2)),
    ('  of which writing the blob', find('ctr/store.py', 'write')),
    ('store gc', find('ctr/store.py', 'gc')),
]
shown = ['%s %.0f ms' % (name.strip(), 1000 * t) for name, t in parts if t >= 0.005]
print('whole command %.0f ms: %s' % (1000 * total, '; '.join(shown)))
EOF
)")
    done
fi
# single-core deflate speed of incompressible data here: what a gzip layer of random bytes costs
read -r deflate1 deflate6 < <("$PYTHON" - <<'EOF'
import os, time, zlib
data = os.urandom(32 << 20)
out = []
for level in (1, 6):
    t = time.perf_counter()
    for i in range(0, len(data), 1 << 20):
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        c.compress(data[i:i + (1 << 20)])
        c.flush(zlib.Z_SYNC_FLUSH)
    out.append('%.0f' % (len(data) / (time.perf_counter() - t) / 1e6))
print(' '.join(out))
EOF
)
deflate="$deflate1 MB/s at level 1, $deflate6 MB/s at level 6"
deflate_cpu=$(awk -v b="$ctx_bytes" -v a="$deflate1" -v c="$deflate6" 'BEGIN { printf "%.1f at level 1, %.1f at level 6", b / a / 1e6, b / c / 1e6 }')
elapsed=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
moved=''
if [ "$(cd "$repo" && cat plugins/module_utils/ctr/*.py plugins/module_utils/ctr/runtime/*.py | sha256sum | cut -c1-12)" != "$engine" ]; then
    moved=' The engine sources changed while the script ran (a shared working tree): later rounds may have timed newer code.'
    log "note:$moved"
fi

# -- report ---------------------------------------------------------------------------------------

med() {     # CASE: its median in ms
    "$PYTHON" -c 'import statistics, sys
print("%.0f" % (1000 * statistics.median(float(l.split("\t")[2]) for l in open(sys.argv[1]) if l.split("\t")[0] == sys.argv[2])))' \
        "$work/results.tsv" "$1"
}

# summary [--markdown]: one row a case: medians of ctr, podman, buildah, ctr/podman, the goal and verdict
summary() {
    "$PYTHON" - "$work/results.tsv" "$use_buildah" "$@" <<'EOF'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    case, _, wall, _ = line.rstrip('\n').split('\t')
    times.setdefault(case, []).append(float(wall))
buildah = sys.argv[2] == '1'
markdown = '--markdown' in sys.argv[3:]
results = '--results' in sys.argv[3:]
med = lambda case: statistics.median(times[case]) if case in times else None
rows = [('cold build, examples/helloworld', 'hello_cold', 0.7),
        ('cached rebuild, examples/helloworld', 'hello_cached', 0.1),
        ('cold build, COPY of a 200 MiB context', 'ctx_cold', 0.8),
        ('cached rebuild, 200 MiB context', 'ctx_cached', None),
        ('commit, 200 MiB of changes', 'commit', 0.8),
        ('commit + unpack, 200 MiB of changes', 'commit_unpack', None)]
header = ['case', 'ctr s', 'podman s'] + (['buildah s'] if buildah else []) + ['ctr / podman', 'goal', 'met']
out, sentences, close = [], [], []
for text, case, goal in rows:
    ours, theirs = med('ctr_' + case), med('podman_' + case if case != 'commit_unpack' else 'podman_commit')
    if ours is None:
        continue
    ratio = ours / theirs
    verdict = '-' if goal is None else ('met' if ratio <= goal else 'NOT met')
    row = [text, '%.2f' % ours, '%.2f' % theirs]
    if buildah:
        b = med('buildah_' + case)
        row.append('%.2f' % b if b is not None else '-')
    row += ['%.2fx' % ratio, '<= %.1fx' % goal if goal is not None else '(info)', verdict]
    out.append(row)
    if goal is not None:
        sentences.append('%s = %.2fx podman: goal %s.' % (text[0].upper() + text[1:], ratio, verdict))
        if abs(ratio - goal) <= 0.1 * goal:
            close.append({'hello_cold': 'the cold helloworld build', 'hello_cached': 'the cached helloworld rebuild',
                          'ctx_cold': 'the cold 200 MiB COPY build', 'commit': 'the 200 MiB commit'}[case])
if results:
    print('Results: **' + '**\n**'.join(sentences) + '**')
    if close:
        names = ' and '.join(close)
        print('%s %s within 10%% of %s: with the spread the min and max columns show, another run'
              % (names[0].upper() + names[1:], 'is' if len(close) == 1 else 'are',
                 'its goal' if len(close) == 1 else 'their goals'))
        print('on this host may give the other verdict.')
elif markdown:
    print('| ' + ' | '.join(header) + ' |')
    print('|---|' + '|'.join(['---:'] * (len(header) - 3)) + '|---:|---|')
    for row in out:
        print('| ' + ' | '.join(row) + ' |')
else:
    widths = [max(len(r[i]) for r in out + [header]) for i in range(len(header))]
    for row in [header] + out:
        print('  '.join(c.ljust(w) if i in (0, len(header) - 1) else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip())
EOF
}
verdicts=$(summary | awk 'NR > 1 && / met$/ { n++; if (/NOT met$/) bad++ } END { printf "%d goals, %d not met", n, bad + 0 }')

echo
summary
echo
bench_table "$work/results.tsv" --baseline none
echo "layer of the commit: ctr stores ${commit_blob} bytes (gzip), the upper dirs hold ctr ${upper_ctr}, podman ${upper_podman} bytes"
echo "deflate of random bytes on one core: $deflate"
echo "cached rebuild: imports ${imp_total} ms (ctr's own ${imp_ctr} ms; slowest $imp_top); python3 -c pass ${start_ms} ms"
if [ "$PROFILE" = 1 ]; then
    i=0
    for name in hello_cold hello_cached ctx_cold ctx_cached commit; do
        echo "cProfile, $name: ${phases[$i]}"
        i=$((i + 1))
    done
fi
echo "total time ${elapsed}s ($verdicts)"

[ -n "$DOC" ] || exit 0
version() { "$@" 2>/dev/null | awk 'NR == 1' || echo 'not installed'; }
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fs=$(df -T "$work" | awk 'NR == 2 { print $2 }')
{
    echo "## $TITLE"
    echo
    echo "Goals: a cold \`ctr build\` of examples/helloworld within **0.7x** of \`podman build\`'s, its"
    echo "cached rebuild within **0.1x**; a cold build that COPYs a 200 MiB context within **0.8x**; a"
    echo "commit of a container with 200 MiB of changes within **0.8x** of \`podman commit\`."
    echo
    summary --results
    echo
    summary --markdown
    echo
    bench_table "$work/results.tsv" --baseline none --markdown |
        awk 'BEGIN { FS = OFS = "|" } { NF -= 2; print $0 "|" }' |
        sed 's/| CPU s (median) |$/| CPU s (median, with children) |/'
    echo
    echo "Wall-clock seconds, $RUNS rounds of every case, each engine once a round, the order reversed"
    echo "every other round, \`sync\` before every timed command, page cache hot. Every side builds FROM"
    echo "the same busybox image (the host's \`$BUSYBOX\`, imported by ctr, \`ctr save\` + \`podman load\`,"
    echo "\`buildah pull docker-archive:\`), each in a store of its own in a temp dir on $fs, with RUN"
    echo "under \`--network none\` and runc. ctr runs as \`$PYTHON -m ctr --root R build --network none\`."
    echo
    echo "- **Cold** builds: ctr into a fresh store holding only the base image, unpacked (its step"
    echo "  cache and its context hash cache are empty); podman and buildah with \`--layers --no-cache\`,"
    echo "  every image the build made removed afterwards (checked: only the base image is left). No"
    echo "  cold run says \"Using cache\" anywhere; every cached one says it for every step."
    echo "- **Cached** rebuilds: the same build again after one untimed build, nothing changed."
    echo "- The big context is $CTX_FILES files of 1 MiB from /dev/urandom ($ctx_bytes bytes, incompressible), kept in"
    echo "  \`bench/data/build-context\`; the Dockerfile (\`FROM busybox\`, \`COPY . /data\`) lies outside it."
    echo "- **Commit**: a stopped container (\`run --network none busybox sh -c\` writing $CTX_FILES x 1 MiB"
    echo "  from /dev/urandom into /data; upper dirs: ctr $upper_ctr bytes, podman $upper_podman)"
    echo "  committed under a name, which is removed after each run with its layer, so each commit"
    echo "  writes its layer anew (podman reuses a layer it already has: a second commit of the same"
    echo "  container takes a fraction of the first). The two do different work: ctr packs the upper"
    echo "  dir into a tar, hashes it (diff ID), gzips it (level 1, 1 MiB blocks on every core; a block"
    echo "  whose first 64 KiB do not shrink is stored, not deflated, as all of this random data is)"
    echo "  into one blob of $commit_blob bytes, and fsyncs it; the layer is unpacked only when a container"
    echo "  first runs the image (the \"commit + unpack\" row does that too). podman stores no"
    echo "  compressed blob: it writes the diff as an uncompressed tar to a temp file while hashing it,"
    echo "  then untars that into a new overlay layer (with tar-split metadata): the bytes are written"
    echo "  more than once, never deflated. A build layer of ctr's is gzipped the same way, and the"
    echo "  COPY step's upper dir becomes the unpacked layer (no extraction)."
    echo
    echo "Where the time goes:"
    echo
    echo "- **Cached rebuild** ($(med ctr_hello_cached) ms; the goal, 0.1x podman, is $(($(med podman_hello_cached) / 10)) ms): it hashes"
    echo "  nothing again (the context's hash cache is keyed by inode, size and times) and runs no"
    echo "  step, so it is the interpreter's start (\`$PYTHON -c pass\`: ${start_ms} ms) plus imports:"
    echo "  \`-X importtime\` of one cached helloworld rebuild sums ${imp_total} ms of module bodies (${imp_ctr} ms"
    echo "  in ctr's own; slowest self times: ${imp_top//,/, }), then the work: reading the cached"
    echo "  steps' manifests and configs back. The profile below shows the imports and the regexes compiled.$(
        [ $((start_ms + imp_total)) -gt $(($(med podman_hello_cached) / 10)) ] && echo ' Start-up and imports alone are above the goal.')"
    echo "- **Cold 200 MiB COPY and commit**: packing the layer (tar, the two sha256 passes of the diff"
    echo "  ID and the blob digest, the blob's write). Deflating random bytes would run at $deflate"
    echo "  on one core of this host (Python's zlib): $deflate_cpu CPU seconds for this layer, work"
    echo "  podman never does (it keeps layers unpacked and stores no compressed blob). ctr tries each"
    echo "  1 MiB block on its first 64 KiB and stores the blocks that do not shrink by 3%, so this"
    echo "  incompressible layer costs a sample compression per block; the choice depends on the bytes"
    echo "  only, so layers stay reproducible."
    if [ "$PROFILE" = 1 ]; then
        echo
        echo "Where ctr's time goes, one run of each under cProfile (the profiler inflates Python-heavy"
        echo "parts; the deflate threads and the COPY child are outside it, seen as the main thread's wait):"
        echo
        i=0
        for name in 'cold helloworld' 'cached helloworld' 'cold 200 MiB context' 'cached 200 MiB context' 'commit'; do
            echo "- $name: ${phases[$i]}."
            i=$((i + 1))
        done
    fi
    echo
    echo "Machine: $(nproc) CPUs ($cpu_model), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM,"
    echo "kernel $(uname -r), $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release);"
    echo "$("$PYTHON" -c 'import sys, zlib; print("Python " + sys.version.split()[0] + " (zlib " + zlib.ZLIB_VERSION + ")")'),"
    echo "podman $(version podman version --format '{{.Client.Version}}'), $(version buildah --version | awk '{ print $1, $2, $3 }'), $(version runc --version)."
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, engine sources sha256 $engine…;"
    echo "whole script ${elapsed}s.$moved Rerun: \`bench/build.sh [N]\`."
} | "$PYTHON" "$repo/bench/benchdoc.py" section "$DOC" "$TITLE"
log "wrote the section \"$TITLE\" of $DOC"
