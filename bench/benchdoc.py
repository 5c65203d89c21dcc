# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Summaries of benchmark timings, and one section per benchmark in docs/benchmarks.md.

Timings come as a TSV file, one timed run a line::

    CASE <TAB> LABEL <TAB> WALL_SECONDS <TAB> CPU_SECONDS

Commands (shared by every script in bench/)::

    benchdoc.py table RESULTS --baseline CASE [--markdown]
        median, min and max wall time per case (in order of first appearance), median CPU
        time (user + system of the process and its children), and the ratio of each median
        to the baseline's median
    benchdoc.py ratio RESULTS CASE BASELINE
        median(CASE) / median(BASELINE), to 2 decimals
    benchdoc.py section DOC TITLE
        replace the section "## TITLE" of DOC (up to the next "## " heading) with standard
        input, or append it; every other section is kept as it is
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import OrderedDict


def read_results(path):
    """{case: (label, [wall...], [cpu...])} in order of first appearance."""
    cases = OrderedDict()
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip('\n')
            if not line:
                continue
            fields = line.split('\t')
            if len(fields) != 4:
                raise SystemExit('%s:%d: expected 4 tab-separated fields, got %d' % (path, lineno, len(fields)))
            case, label, wall, cpu = fields
            entry = cases.setdefault(case, (label, [], []))
            entry[1].append(float(wall))
            entry[2].append(float(cpu))
    return cases


def median(values):
    return statistics.median(values) if values else float('nan')


def ratio(cases, case, baseline):
    if case not in cases or baseline not in cases:
        missing = case if case not in cases else baseline
        raise SystemExit('no timings for case "%s"' % missing)
    return median(cases[case][1]) / median(cases[baseline][1])


def table(cases, baseline, markdown):
    base = median(cases[baseline][1]) if baseline in cases else None
    header = ('case', 'runs', 'median s', 'min s', 'max s', 'CPU s (median)', 'vs %s' % baseline)
    rows = []
    for case, (label, walls, cpus) in cases.items():
        vs = '%.2fx' % (median(walls) / base) if base else '-'
        rows.append((label, str(len(walls)), '%.2f' % median(walls), '%.2f' % min(walls), '%.2f' % max(walls),
                     '%.2f' % median(cpus), vs))
    if markdown:
        cells = [[c.replace('|', '\\|') for c in row] for row in [header] + rows]   # a | in a label is text
        lines = ['| ' + ' | '.join(cells[0]) + ' |', '|' + '|'.join(['---'] + ['---:'] * (len(header) - 1)) + '|']
        lines += ['| ' + ' | '.join(row) + ' |' for row in cells[1:]]
    else:
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        lines = ['  '.join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in [header] + rows]
    return '\n'.join(lines) + '\n'


def replace_section(doc, title, body):
    """DOC's text with section ``## title`` replaced by ``body`` (appended when absent)."""
    heading = '## ' + title
    try:
        with open(doc, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = ['# Benchmarks', '']
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    body_lines = body.rstrip('\n').splitlines()
    if not body_lines or body_lines[0].strip() != heading:
        body_lines.insert(0, heading)
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += [''] + body_lines
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith('## ')), len(lines))
        tail = lines[end:]
        lines = lines[:start] + body_lines + ([''] + tail if tail else [])
    return '\n'.join(lines) + '\n'


def write_atomic(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.benchdoc-', dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest='command')
    sub.required = True
    s = sub.add_parser('table')
    s.add_argument('results')
    s.add_argument('--baseline', required=True)
    s.add_argument('--markdown', action='store_true')
    s = sub.add_parser('ratio')
    s.add_argument('results')
    s.add_argument('case')
    s.add_argument('baseline')
    s = sub.add_parser('section')
    s.add_argument('doc')
    s.add_argument('title')
    args = p.parse_args(argv)

    if args.command == 'table':
        sys.stdout.write(table(read_results(args.results), args.baseline, args.markdown))
    elif args.command == 'ratio':
        print('%.2f' % ratio(read_results(args.results), args.case, args.baseline))
    else:
        write_atomic(args.doc, replace_section(args.doc, args.title, sys.stdin.read()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
