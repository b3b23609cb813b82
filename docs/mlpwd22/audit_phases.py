"""A synthetic audit (`SyntheticAudit`'s ``synthetic_audit.csv``) by thirds of the run (issue 22, twenty-first sitting).

    python docs/mlpwd22/audit_phases.py runs/sort_audit/policy/sort/naive-utd4_s0/synthetic_audit.csv

Per third of the synthetic calls and imagined step k: audited steps; steps where the object (the state's first three
entries: the red block on sort) stands more than 1 cm above the branch's start in the simulator's replay of the same
actions (lifted, real), in imagination (predicted), in both; the end effector's RMSE [mm]; the mean reward predicted
and real; success counts (replay, imagined, both). Then, over the whole run, how far the imagined object stands
above the replayed one (imagined rise - replayed rise, mm; on peg insertion the peg's height short of the real
insertion) on the replay's successes the model missed, on those it found, on its false ones and on the rest.
"""
import csv
import sys

import numpy as np

LIFT = 0.01  # SyntheticAudit.summary's lift_threshold [m]


def main() -> None:
    with open(sys.argv[1]) as f:
        rows = list(csv.DictReader(f))
    col = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    calls = col["call"]
    edges = np.percentile(calls, [0, 100 / 3, 200 / 3, 100])
    print("| calls | k | steps | lifted: real | predicted | both | end effector [mm] | reward: predicted | real | success: real | predicted | both |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        for k in (1, 2, 4, 8, 10):
            m = (col["k"] == k) & (calls >= lo) & ((calls < hi) if i < 2 else (calls <= hi))
            if not m.any():
                continue
            real, pred = col["object_rise_real"][m] > LIFT, col["object_rise_predicted"][m] > LIFT
            print(f"| {lo:.0f}-{hi:.0f} | {k} | {m.sum()} | {real.sum()} | {pred.sum()} | {(real & pred).sum()} | "
                  f"{1000 * np.sqrt((col['ee_error'][m] ** 2).mean()):.1f} | "
                  f"{col['reward_predicted'][m].mean():+.3f} | {col['reward_real'][m].mean():+.3f} | "
                  f"{col['success_real'][m].sum():.0f} | {col['success_predicted'][m].sum():.0f} | "
                  f"{((col['success_real'][m] > 0.5) & (col['success_predicted'][m] > 0.5)).sum()} |")

    sr, sp = col["success_real"] > 0.5, col["success_predicted"] > 0.5
    short = 1000 * (col["object_rise_predicted"] - col["object_rise_real"])
    print("\n| steps | count | imagined object above the replayed one [mm], 10/25/50/75/90 % | object error [mm], median |")
    print("|---|---|---|---|")
    for name, m in (("replay success, missed", sr & ~sp), ("replay success, found", sr & sp),
                    ("imagined success, false", ~sr & sp), ("neither", ~sr & ~sp)):
        if m.any():
            q = " / ".join(f"{v:+.1f}" for v in np.percentile(short[m], [10, 25, 50, 75, 90]))
            print(f"| {name} | {m.sum()} | {q} | {1000 * np.median(col['object_error'][m]):.1f} |")


if __name__ == "__main__":
    main()
