"""Mean branch length and median uncertainty per branch step over the first 1,280 branches of PPL runs' decision logs.

python docs/ff22/branch_stats.py RUN_DIR [RUN_DIR ...]   (each with a ppl_decisions.csv)
"""
import collections
import csv
import sys

import numpy as np

for run in sys.argv[1:]:
    unc, length = collections.defaultdict(list), collections.defaultdict(int)
    for r in csv.DictReader(open(f"{run}/ppl_decisions.csv")):
        e = r["episode_id"]
        if e not in length and len(length) >= 1280:
            break
        length[e] = max(length[e], int(r["step"]) + 1)
        unc[int(r["step"])].append(float(r["uncertainty"]))
    print(f"{run}: {len(length)} branches, mean length {np.mean(list(length.values())):.2f}; median uncertainty by step",
          [round(float(np.median(unc[k])), 2) for k in sorted(unc)])
