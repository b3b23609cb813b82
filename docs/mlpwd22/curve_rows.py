"""Per-evaluation means, area under the curve, steps fraction and lowest difference of two sets of policy runs.

    python docs/mlpwd22/curve_rows.py BASELINE_GLOB CANDIDATE_GLOB [SEEDS]
    python docs/mlpwd22/curve_rows.py 'docs/push20k22/rl-only_s*/results.json' 'docs/mlpwd22/push20k_tfnr/ppl-utd4_s*/results.json' 0,1,2

Each glob names runs' ``results.json`` (their ``success_curve``). Area: the mean success over a run's evaluations,
+- the standard error over seeds. The fraction: the first evaluation where the candidate's seed-mean reaches the
baseline's final seed-mean, over the baseline's own first such evaluation; "smoothed": both mean curves averaged over
3 evaluations first (the experiment report's `smoothed`). Lowest difference: candidate minus baseline from 6k real steps on.
"""

import glob
import json
import statistics as st
import sys

from worldsample_learner.drivers.experiment_report import mean_curve, smoothed, steps_to_reach

Curve = list[tuple[int, float]]


def load(pattern: str) -> dict[int, Curve]:
    runs = {}
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            d = json.load(f)
        runs[d["seed"]] = [(int(step), float(value)) for step, value in d["success_curve"]]
    return runs


def summary(name: str, runs: dict[int, Curve]) -> Curve:
    seeds = sorted(runs)
    mean = mean_curve([runs[s] for s in seeds])
    areas = [st.mean(v for _, v in runs[s]) for s in seeds]
    se = st.stdev(areas) / len(areas) ** 0.5 if len(areas) > 1 else 0.0
    print(f"{name} seeds {seeds}: area {st.mean(areas):.3f} +- {se:.3f}, per seed {[round(a, 3) for a in areas]}, "
          f"finals {[runs[s][-1][1] for s in seeds]}")
    print("  mean", " ".join(f"{m:.2f}" for _, m in mean))
    return mean


def main(argv: list[str]) -> None:
    base, cand = load(argv[1]), load(argv[2])
    if len(argv) > 3:
        keep = [int(s) for s in argv[3].split(",")]
        missing = [(name, s) for name, runs in (("baseline", base), ("candidate", cand)) for s in keep if s not in runs]
        if missing:
            sys.exit(f"no results.json for {', '.join(f'{name} seed {s}' for name, s in missing)}")
        base, cand = {s: base[s] for s in keep}, {s: cand[s] for s in keep}
    b, c = summary("baseline", base), summary("candidate", cand)
    assert [t for t, _ in b] == [t for t, _ in c], "the two sets are evaluated at different steps"
    final = b[-1][1]
    tb, tc = steps_to_reach(b, final), steps_to_reach(c, final)
    sb, sc = smoothed(b), smoothed(c)
    tsb, tsc = steps_to_reach(sb, sb[-1][1]), steps_to_reach(sc, sb[-1][1])
    frac = f"{tc / tb:.2f}x" if tc else "never"
    frac_s = f"{tsc / tsb:.2f}x" if tsc else "never"
    print(f"baseline final {final:.2f}, first at {tb}; candidate first at {tc}: {frac}; smoothed {tsc} / {tsb}: {frac_s}")
    diffs = [(cv - bv, t) for (t, bv), (_, cv) in zip(b, c, strict=True) if t >= 6000]
    print(f"lowest difference from 6k on: {min(diffs)[0]:+.2f} at {min(diffs)[1]}; candidate above at "
          f"{[t for (t, bv), (_, cv) in zip(b, c, strict=True) if cv > bv]}")


if __name__ == "__main__":
    main(sys.argv)
