"""Per-evaluation means, area under the curve, steps fraction and lowest difference of two sets of policy runs.

    python docs/mlpwd22/curve_rows.py BASELINE_GLOB CANDIDATE_GLOB [SEEDS]
    python docs/mlpwd22/curve_rows.py 'docs/push20k22/rl-only_s*/results.json' 'docs/mlpwd22/push20k_tfnr/ppl-utd4_s*/results.json' 0,1,2

Each glob names runs' ``results.json`` (their ``success_curve``). Area: the mean success over a run's evaluations,
+- the standard error over seeds. The fraction: the first evaluation where the candidate's seed-mean reaches the
baseline's final seed-mean, over the baseline's own first such evaluation; "smoothed": both mean curves averaged over
3 evaluations first (the experiment report's rule). Lowest difference: candidate minus baseline from 6k real steps on.
"""

import glob
import json
import statistics as st
import sys


def load(pattern: str) -> dict[int, dict[int, float]]:
    runs = {}
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            d = json.load(f)
        runs[d["seed"]] = {int(step): value for step, value in d["success_curve"]}
    return runs


def summary(name: str, runs: dict[int, dict[int, float]]) -> tuple[list[int], list[float]]:
    seeds = sorted(runs)
    steps = sorted(runs[seeds[0]])
    mean = [st.mean(runs[s][t] for s in seeds) for t in steps]
    areas = [st.mean(runs[s].values()) for s in seeds]
    se = st.stdev(areas) / len(areas) ** 0.5 if len(areas) > 1 else 0.0
    print(f"{name} seeds {seeds}: area {st.mean(areas):.3f} +- {se:.3f}, per seed {[round(a, 3) for a in areas]}, "
          f"finals {[runs[s][steps[-1]] for s in seeds]}")
    print("  mean", " ".join(f"{m:.2f}" for m in mean))
    return steps, mean


def first(steps: list[int], curve: list[float], level: float) -> int | None:
    return next((t for t, v in zip(steps, curve, strict=True) if v >= level - 1e-9), None)


def smoothed(curve: list[float]) -> list[float]:
    return [st.mean(curve[max(0, i - 1):i + 2]) for i in range(len(curve))]


def main(argv: list[str]) -> None:
    base, cand = load(argv[1]), load(argv[2])
    if len(argv) > 3:
        keep = [int(s) for s in argv[3].split(",")]
        base, cand = {s: base[s] for s in keep}, {s: cand[s] for s in keep}
    steps, b = summary("baseline", base)
    cand_steps, c = summary("candidate", cand)
    assert cand_steps == steps, "the two sets are evaluated at different steps"
    tb, tc = first(steps, b, b[-1]), first(steps, c, b[-1])
    sb, sc = smoothed(b), smoothed(c)
    tsb, tsc = first(steps, sb, sb[-1]), first(steps, sc, sb[-1])
    frac = f"{tc / tb:.2f}x" if tc else "never"
    frac_s = f"{tsc / tsb:.2f}x" if tsc else "never"
    print(f"baseline final {b[-1]:.2f}, first at {tb}; candidate first at {tc}: {frac}; smoothed {tsc} / {tsb}: {frac_s}")
    diffs = [(cv - bv, t) for t, bv, cv in zip(steps, b, c, strict=True) if t >= 6000]
    print(f"lowest difference from 6k on: {min(diffs)[0]:+.2f} at {min(diffs)[1]}; candidate above at "
          f"{[t for t, bv, cv in zip(steps, b, c, strict=True) if cv > bv]}")


if __name__ == "__main__":
    main(sys.argv)
