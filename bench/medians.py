#!/usr/bin/env python3
"""Medians of several bench/run-all.sh runs: python3 bench/medians.py bench/results/*/results.tsv
prints each metric, its median and every value, in file order."""
import sys, statistics, collections
vals = collections.defaultdict(list)
for path in sys.argv[1:]:
    for line in open(path):
        parts = line.rstrip('\n').split('\t')
        if len(parts) != 4: continue
        try: v = float(parts[3])
        except ValueError: continue
        vals['.'.join(parts[:3])].append(v)
for k in sorted(vals):
    v = vals[k]
    print(f"{k}\t{statistics.median(v):.2f}\t{' '.join(f'{x:g}' for x in v)}")
