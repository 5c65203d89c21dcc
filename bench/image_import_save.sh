#!/usr/bin/env bash
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage (as root, from anywhere; no network needed):
#   bench/image_import_save.sh
#
# Image import and save of a ~500 MB rootfs tree, timed side by side with the floor pipeline
# `tar -c | gzip -6 | sha256sum` of the same tree and with the peers a user would reach for
# (podman, skopeo, umoci) when they are installed. Medians, min/max and the ratio to the
# pipeline are printed and written to the section "## Images: import and save" of
# docs/benchmarks.md. Goal (issue 2): `ctr import` within 1.5x of the pipeline.
#
# Rounds 1..RUNS each run every case once, odd rounds in order and even rounds in reverse
# order; the peers take part in the first PEER_RUNS rounds only (they are context, and slow).
# Before round 1 an untimed `ctr import` of the tree (the image the save cases read) warms
# the page cache, Python's bytecode cache and the store code paths.
#
# Environment:
#   RUNS=5              timed runs of the pipeline and of every ctr case
#   PEER_RUNS=2         timed runs of every peer case (at most RUNS)
#   BENCH_DATA=DIR      where the rootfs tree is built and kept (default bench/data, gitignored)
#   BENCH_SIZE_MB=500   size of the tree (a different size rebuilds it)
#   PEERS="podman skopeo umoci"   peers to time (those not installed are skipped and said so)
#   BENCH_DOC=FILE      results document (default docs/benchmarks.md); BENCH_DOC= (empty) skips it
#   PYTHON=python3      the interpreter that runs `python3 -m ctr`
#   TMPDIR=/var/tmp     where the temporary stores and archives go (removed on exit)
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
PEER_RUNS=${PEER_RUNS:-2}
DATA=${BENCH_DATA:-$repo/bench/data}
SIZE_MB=${BENCH_SIZE_MB:-500}
PEERS=${PEERS-podman skopeo umoci}
DOC=${BENCH_DOC-$repo/docs/benchmarks.md}
PYTHON=${PYTHON:-python3}
TITLE='Images: import and save'
RECIPE=1                      # bump when the tree recipe below changes: old trees are rebuilt
MAX_FILE=$((64 << 20))        # larger host files are left out (a few large-ish files, no giant)

log() { printf '%s\n' "$*" >&2; }
die() { log "image_import_save: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die 'run me as root (the tree keeps owners, podman and ctr stores are root-owned)'
case $RUNS in '' | *[!0-9]* | 0) die "RUNS=\"$RUNS\" is not a positive integer" ;; esac
case $PEER_RUNS in '' | *[!0-9]*) die "PEER_RUNS=\"$PEER_RUNS\" is not a number" ;; esac
if [ "$PEER_RUNS" -gt "$RUNS" ]; then PEER_RUNS=$RUNS; fi
case $SIZE_MB in '' | *[!0-9]* | 0) die "BENCH_SIZE_MB=\"$SIZE_MB\" is not a positive integer" ;; esac
for tool in tar gzip sha256sum find "$PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ -n "${EPOCHREALTIME:-}" ] || die 'bash 5 or later is needed (EPOCHREALTIME)'

ctr() { PYTHONPATH="$repo/plugins/module_utils" "$PYTHON" -m ctr "$@"; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/ctr-bench.XXXXXX")
cleanup() {
    local target
    # a peer killed halfway may leave a mount behind; never rm -rf across one
    awk -v w="$work" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r target; do
        umount -l "$target" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- 1. the rootfs tree ------------------------------------------------------------------------

# Prints NUL-separated path lists, one file per copy (list.0, list.1, ...), into $1: host
# content picked in sorted order from a few weighted groups until each group's share of the
# budget is filled. A group smaller than its share is taken again as one more copy, so small
# hosts get several copies of what they have. Regular files, directories and symlinks only.
select_tree() {
    "$PYTHON" - "$1" "$((SIZE_MB * 1000 * 1000))" "$MAX_FILE" <<'EOF'
import glob, os, stat, sys

out, budget, max_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
GROUPS = [   # weight, directories: libraries, executables, Python, Perl, locales, docs, man, data
    (40, ['/usr/lib/*-linux-gnu']),
    (10, ['/usr/bin', '/usr/sbin']),
    (15, ['/usr/lib/python3', '/usr/lib/python3.*']),
    (5, ['/usr/share/perl', '/usr/share/perl5']),
    (8, ['/usr/share/locale']),
    (8, ['/usr/share/doc']),
    (7, ['/usr/share/man']),
    (7, ['/usr/share/i18n', '/usr/share/zoneinfo', '/usr/share/mime', '/usr/share/misc']),
]

def entries(top):
    dev = os.lstat(top).st_dev
    for parent, dirs, files in os.walk(top):
        dirs.sort()
        yield parent, 0
        keep = []
        for name in dirs:          # symlinks to directories are listed, not followed
            path = os.path.join(parent, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                yield path, 0
            elif st.st_dev == dev:
                keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            path = os.path.join(parent, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                yield path, 0
            elif stat.S_ISREG(st.st_mode) and st.st_size <= max_file:
                yield path, st.st_size

groups = []
for weight, patterns in GROUPS:
    tops = sorted(d for pattern in patterns for d in glob.glob(pattern) if os.path.isdir(d) and not os.path.islink(d))
    listed = [e for top in tops for e in entries(top)]
    if sum(size for _, size in listed):
        groups.append((weight, listed))
if not groups:
    sys.exit('none of the host directories this tree is made from exists')
total_weight = sum(weight for weight, _ in groups)
copies = {}
for weight, listed in groups:
    share, taken, i = budget * weight // total_weight, 0, 0
    while taken < share:
        path, size = listed[i % len(listed)]
        copies.setdefault(i // len(listed), []).append(path.lstrip('/'))
        taken += size
        i += 1
for copy, paths in sorted(copies.items()):
    with open(os.path.join(out, 'list.%d' % copy), 'wb') as f:
        f.write(b''.join(os.fsencode(p) + b'\0' for p in paths))
EOF
}

build_tree() {
    local stamp="$DATA/rootfs.stamp" want="recipe=$RECIPE size_mb=$SIZE_MB max_file=$MAX_FILE" new list copy
    tree="$DATA/rootfs"
    if [ -d "$tree" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        log "reusing the tree at $tree ($want)"
        return
    fi
    log "building a ~${SIZE_MB} MB tree at $tree from this host's /usr ..."
    mkdir -p "$DATA"
    rm -rf "$tree" "$stamp" "$DATA/rootfs.new"
    new="$DATA/rootfs.new"
    mkdir -p "$new" "$work/lists"
    select_tree "$work/lists"
    for list in "$work/lists"/list.*; do
        copy=c${list##*.}
        mkdir -p "$new/$copy"
        tar -C / --null --no-recursion -T "$list" -cf - | tar -C "$new/$copy" -xpf -
    done
    mv "$new" "$tree"
    printf '%s\n' "$want" >"$stamp"
}

describe_tree() {
    # regular files, directories, symlinks, hardlinked files, bytes, files >= 1 MiB, largest
    find "$tree" -xdev -printf '%y %s %n\n' | awk '
        $1 == "f" { f++; b += $2; if ($2 >= 1048576) big++; if ($2 > max) max = $2; if ($3 > 1) hl++ }
        $1 == "d" { d++ } $1 == "l" { l++ }
        END { printf "%d %d %d %d %d %d %d\n", f, d, l, hl, b, big, max }'
}

# -- 2. the cases -----------------------------------------------------------------------------

# Each case ID has run_ID (timed) and may have pre_ID / post_ID (untimed, around every run).
# What a run writes is removed after it: the temp dir peaks at about 4x the tree (ctr store,
# kept archive, podman store, one output).
cases=()
declare -A label peer
add_case() { cases+=("$1"); label[$1]=$2; peer[$1]=${3:-}; }

store=$work/ctr-store          # the image the save cases read, imported once at set-up
ref=docker.io/library/bench:latest

run_pipeline() { tar -C "$tree" -cf - . | gzip -6 | sha256sum; }

pre_ctr_import() { rm -rf "$work/ctr-fresh"; }
run_ctr_import() { ctr --root "$work/ctr-fresh" import "$tree" bench:latest; }
post_ctr_import() {
    # the layer blob is the largest blob; the same tree must give the same digest every run
    find "$work/ctr-fresh/oci/blobs/sha256" -type f -printf '%s %f\n' | sort -n | awk 'END { print $2 }' \
        >>"$work/layer-digests"
    rm -rf "$work/ctr-fresh"
}

run_ctr_reimport() { ctr --root "$store" import "$tree" bench:latest; }

pre_ctr_save_docker() { rm -f "$work/ctr-docker.tar"; }
post_ctr_save_docker() { rm -f "$work/ctr-docker.tar"; }
run_ctr_save_docker() { ctr --root "$store" save --format docker-archive -o "$work/ctr-docker.tar" bench:latest; }

run_ctr_save_docker_again() { ctr --root "$store" save --format docker-archive -o "$work/ctr-docker-kept.tar" bench:latest; }

pre_ctr_save_oci() { rm -f "$work/ctr-oci.tar"; }
post_ctr_save_oci() { rm -f "$work/ctr-oci.tar"; }
run_ctr_save_oci() { ctr --root "$store" save --format oci-archive -o "$work/ctr-oci.tar" bench:latest; }

# podman keeps its store in the temp dir too. The podman save cases read the image the last
# podman import made: round 1 runs in order, so its import comes before its saves.
podman_() { podman --root "$1" --runroot "$1.run" --tmpdir "$1.tmp" --events-backend none "${@:2}"; }
pre_podman_import() { rm -rf "$work/podman-store"*; }
run_podman_import() { tar -C "$tree" -cf - . | podman_ "$work/podman-store" import -q - bench:latest; }

pre_podman_save_docker() { rm -f "$work/podman-docker.tar"; }
post_podman_save_docker() { rm -f "$work/podman-docker.tar"; }
run_podman_save_docker() {
    podman_ "$work/podman-store" save -q --format docker-archive -o "$work/podman-docker.tar" bench:latest
}
pre_podman_save_oci() { rm -f "$work/podman-oci.tar"; }
post_podman_save_oci() { rm -f "$work/podman-oci.tar"; }
run_podman_save_oci() { podman_ "$work/podman-store" save -q --format oci-archive -o "$work/podman-oci.tar" bench:latest; }

pre_skopeo_docker() { rm -f "$work/skopeo-docker.tar"; }
post_skopeo_docker() { rm -f "$work/skopeo-docker.tar"; }
run_skopeo_docker() {
    skopeo --insecure-policy copy -q "oci:$store/oci:$ref" "docker-archive:$work/skopeo-docker.tar:bench:latest"
}
pre_skopeo_oci() { rm -f "$work/skopeo-oci.tar"; }
post_skopeo_oci() { rm -f "$work/skopeo-oci.tar"; }
run_skopeo_oci() { skopeo --insecure-policy copy -q "oci:$store/oci:$ref" "oci-archive:$work/skopeo-oci.tar:bench:latest"; }

pre_umoci_insert() { rm -rf "$work/umoci"; }
run_umoci_insert() {
    umoci init --layout "$work/umoci" && umoci new --image "$work/umoci:bench" &&
        umoci insert --image "$work/umoci:bench" "$tree" /
}
post_umoci_insert() { rm -rf "$work/umoci"; }

skipped=()
has_peer() {
    case " $PEERS " in *" $1 "*) ;; *) return 1 ;; esac
    if ! command -v "$1" >/dev/null; then
        skipped+=("$1: not installed")
        return 1
    fi
}

add_case pipeline 'tar -c | gzip -6 | sha256sum (floor)'
add_case ctr_import 'ctr import (fresh store)'
add_case ctr_reimport 'ctr import again, unchanged (hash-only check)'
add_case ctr_save_docker 'ctr save docker-archive'
add_case ctr_save_docker_again 'ctr save docker-archive, unchanged (read-back check)'
add_case ctr_save_oci 'ctr save oci-archive'
if [ "$PEER_RUNS" -gt 0 ] && has_peer umoci; then
    add_case umoci_insert 'umoci init + new + insert (fresh layout)' peer
fi
if [ "$PEER_RUNS" -gt 0 ] && has_peer podman; then
    add_case podman_import 'tar -c | podman import - (fresh store)' peer
    add_case podman_save_docker 'podman save docker-archive' peer
    add_case podman_save_oci 'podman save oci-archive' peer
fi
if [ "$PEER_RUNS" -gt 0 ] && has_peer skopeo; then
    add_case skopeo_docker 'skopeo copy oci: -> docker-archive:' peer
    add_case skopeo_oci 'skopeo copy oci: -> oci-archive:' peer
fi

is_function() { [ "$(type -t "$1")" = function ]; }

# The shell's `times`, line 2: user and system time of every child it waited for. It must run in
# this shell, not in a $(...) subshell, whose children are not ours.
child_cpu() { awk 'NR == 2 { gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }' "$1"; }

timed() {
    local id=$1 run=$2 cpu0 cpu1 t0 t1 wall cpu
    if is_function "pre_$id"; then "pre_$id"; fi
    sync
    times >"$work/times0"
    t0=$EPOCHREALTIME
    if ! "run_$id" >"$work/out.$id" 2>&1; then
        cat "$work/out.$id" >&2
        die "case $id failed (run $run); its output is above"
    fi
    t1=$EPOCHREALTIME
    times >"$work/times1"
    cpu0=$(child_cpu "$work/times0")
    cpu1=$(child_cpu "$work/times1")
    if is_function "post_$id"; then "post_$id"; fi
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    cpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", b - a }')
    printf '%s\t%s\t%s\t%s\n' "$id" "${label[$id]}" "$wall" "$cpu" >>"$work/results.tsv"
    printf '  run %d  %-56s %7.2f s wall %7.2f s CPU\n' "$run" "${label[$id]}" "$wall" "$cpu" >&2
}

# -- 3. run -----------------------------------------------------------------------------------

started=$EPOCHREALTIME
build_tree
read -r n_files n_dirs n_links n_hardlinked n_bytes n_big max_file < <(describe_tree)
tree_mb=$(awk -v b="$n_bytes" 'BEGIN { printf "%.0f", b / 1e6 }')
tree_desc="$tree_mb MB in $n_files regular files ($n_big of them 1 MiB or more, the largest \
$(awk -v b="$max_file" 'BEGIN { printf "%.1f", b / 1048576 }') MiB; $n_hardlinked hardlinked), \
$n_dirs directories, $n_links symlinks"
log "tree: $tree_desc"

log 'warm-up and set-up (untimed): ctr import of the tree into the store the save cases read ...'
ctr --root "$store" import "$tree" bench:latest >/dev/null
# the read-back check needs an archive to read back
ctr --root "$store" save --format docker-archive -o "$work/ctr-docker-kept.tar" bench:latest

: >"$work/results.tsv"
: >"$work/layer-digests"
for ((run = 1; run <= RUNS; run++)); do
    order=()
    for id in "${cases[@]}"; do
        if [ -z "${peer[$id]}" ] || [ "$run" -le "$PEER_RUNS" ]; then order+=("$id"); fi
    done
    if ((run % 2 == 0)); then               # every other round runs the cases in reverse order
        for ((i = 0, j = ${#order[@]} - 1; i < j; i++, j--)); do
            id=${order[i]}; order[i]=${order[j]}; order[j]=$id
        done
    fi
    for id in "${order[@]}"; do timed "$id" "$run"; done
done
# the table lists the cases in the order they were declared
for id in "${cases[@]}"; do
    awk -F '\t' -v id="$id" '$1 == id' "$work/results.tsv"
done >"$work/results-sorted.tsv"

distinct=$(sort -u "$work/layer-digests" | wc -l)
[ "$distinct" = 1 ] || die "ctr import gave $distinct different layer digests for one tree: not deterministic"
layer_digest=sha256:$(head -n 1 "$work/layer-digests")
ratio=$("$PYTHON" "$repo/bench/benchdoc.py" ratio "$work/results-sorted.tsv" ctr_import pipeline)
verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.5 ? "met" : "NOT met") }')
elapsed=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

echo
echo "tree: $tree_desc"
"$PYTHON" "$repo/bench/benchdoc.py" table "$work/results-sorted.tsv" --baseline pipeline
echo
echo "ctr import / pipeline = ${ratio}x (goal <= 1.5x: $verdict); layer digest $layer_digest, the same in every run"
for reason in "${skipped[@]}"; do echo "peer skipped: $reason"; done
echo "total time ${elapsed}s"

# -- 4. the document --------------------------------------------------------------------------

[ -n "$DOC" ] || exit 0
version() { "$@" 2>/dev/null | head -n 1 || echo 'not installed'; }
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
engine=$(cd "$repo" && cat plugins/module_utils/ctr/*.py | sha256sum | cut -c1-12)
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'none yet')
{
    echo "## $TITLE"
    echo
    echo "Goal (issue 2): \`ctr import\` of a directory within **1.5x** of \`tar -c | gzip -6 | sha256sum\`"
    echo "of the same tree: pack, hash and compress in one streaming pass, no second read of the data."
    echo
    echo "Result: **ctr import = ${ratio}x the pipeline: goal $verdict.**"
    echo
    "$PYTHON" "$repo/bench/benchdoc.py" table "$work/results-sorted.tsv" --baseline pipeline --markdown
    echo
    echo "Wall-clock seconds; \`RUNS=$RUNS PEER_RUNS=$PEER_RUNS\`: the pipeline and every ctr case ran $RUNS"
    echo "times, each peer case $PEER_RUNS times, side by side in rounds that alternate the order"
    echo "of the cases, after an untimed \`ctr import\` of the tree (page cache hot). CPU is"
    echo "user + system time of the command and its children: above wall time means more than"
    echo "one core was busy."
    echo
    echo "- Tree: $tree_desc; built by the script from this host's /usr (libraries, executables,"
    echo "  Python, Perl, locales, docs, man pages, data files; several copies where a host has"
    echo "  less), kept in \`bench/data/\` for later runs."
    echo "- \`ctr import\` writes into a fresh store each run (\`--root\` in a temp dir), so it really"
    echo "  packs and compresses; it also hashes the uncompressed stream (diff ID), writes the"
    echo "  blob and fsyncs it, which the pipeline does not. Its layer digest was the same in every"
    echo "  run: \`$layer_digest\`."
    echo "- \"unchanged\" rows are the second run of a playbook: \`ctr import\` of the same tree into"
    echo "  a store that has it (one hash-only pass, nothing written); \`ctr save\` to an archive that"
    echo "  already holds the image (read back and compared, nothing written)."
    echo "- Saves read one image imported once at set-up; the archive is removed before each run."
    echo "  docker-archive holds uncompressed layers (as \`docker save\`), so it decompresses;"
    echo "  oci-archive copies the stored gzip blobs (ctr, skopeo) or compresses afresh (podman,"
    echo "  whose store keeps layers unpacked)."
    echo "- The floor's \`gzip -6\` is GNU gzip's own deflate on one core. ctr deflates with Python's"
    echo "  zlib at the same level in fixed 1 MiB blocks on every core (pigz-style, each block primed"
    echo "  with the 32 KiB before it, so the bytes do not depend on the core count), while its main"
    echo "  thread walks the tree, writes tar headers and hashes the diff ID."
    if [ -n "${label[umoci_insert]:-}" ]; then
        echo "- umoci compresses with a parallel gzip on every core (its CPU time is above its wall"
        echo "  time), at the price of a slightly larger blob."
    fi
    if [ -n "${label[podman_import]:-}" ]; then
        echo "- podman has no import of a directory: a user pipes \`tar -c\` into \`podman import -\`."
        echo "  It unpacks into its own store (overlay, in a temp dir) instead of compressing."
    fi
    for reason in "${skipped[@]}"; do echo "- Peer not timed: $reason."; done
    echo
    echo "Machine: $(nproc) CPUs ($cpu_model), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM,"
    echo "kernel $(uname -r), $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release), temp dir on $(findmnt -n -o FSTYPE --target "$work" 2>/dev/null || stat -f -c %T "$work");"
    echo "$("$PYTHON" -c 'import sys, zlib; print("Python %s (zlib %s)" % (sys.version.split()[0], zlib.ZLIB_RUNTIME_VERSION))'),"
    echo "$(version gzip --version), $(version tar --version),"
    echo "podman $(version podman version --format '{{.Client.Version}}'), $(version skopeo --version), $(version umoci --version)."
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, engine sources sha256 $engine…;"
    echo "whole script ${elapsed}s. Rerun: \`bench/image_import_save.sh\` (see bench/README.md)."
} | "$PYTHON" "$repo/bench/benchdoc.py" section "$DOC" "$TITLE"
log "wrote the section \"$TITLE\" of $DOC"
