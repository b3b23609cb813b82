"""One row per policy run: its evaluations, area, training success and synthetic volume (a ladder's table).

    python docs/mlpwd22/run_table.py 'runs/sort20k_*/policy/sort/*_s*'

Each argument is a glob of run directories (``results.json``, ``metrics.csv``, ``ppl.csv``). Area: the mean success
over the run's evaluations. Training success: the last and the highest of ``metrics.csv``'s ``train_success_rate``
(its recent-episodes rate). Admitted (of offered): ``ppl.csv``'s last row (its counts are cumulative), with the share and horizon there.
"""

import csv
import glob
import json
import statistics as st
import sys
from pathlib import Path


def rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def main(patterns: list[str]) -> None:
    print("| run | success at each evaluation | final | area | training success: last / highest | admitted (of offered) | "
          "share, horizon at the end | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for run in sorted({Path(p) for pat in patterns for p in glob.glob(pat)}):
        res = run / "results.json"
        if not res.exists():
            continue
        d = json.loads(res.read_text())
        curve = [float(v) for _, v in d["success_curve"]]
        train = [float(r["train_success_rate"]) for r in rows(run / "metrics.csv")]
        trained = f"{train[-1]:.2f} / {max(train):.2f}" if train else "-"  # copied runs may keep no metrics.csv
        ppl = rows(run / "ppl.csv")
        admitted = int(ppl[-1]["admitted"]) if ppl else 0
        offered = admitted + int(ppl[-1]["rejected"]) if ppl else 0
        end = f"{float(ppl[-1]['synthetic_share']):.2f}, {ppl[-1]['rollout_horizon']}" if admitted else "-"
        print(f"| {d['task']} {d['mode']} s{d['seed']} | {' '.join(f'{v:.1f}' for v in curve)} | {curve[-1]:.1f} | "
              f"{st.mean(curve):.3f} | {trained} | {admitted:,} of {offered:,} | {end} | "
              f"{d.get('wall_s', float('nan')):.0f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
