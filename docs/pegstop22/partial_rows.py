"""Peg insertion, seeds 0-1: mean success per evaluation up to N real steps, area over them, and the synthetic
steps admitted by then, for RL-only, PPL and PPL with branches that stop at the rim (issue 22, twenty-sixth sitting).

    python docs/pegstop22/partial_rows.py N

The 160-branch runs were cut by the sitting's end, so the rows compare every mode over the same first N steps."""

import csv
import sys

ROWS = {
    "RL-only, UTD 4": "docs/peg20k22/rl-only-utd4_s{}",
    "video + PPL (64 branches)": "docs/peg20k22/ppl-utd4_s{}",
    "video + PPL, stop at the rim, 64 branches": "docs/pegstop22/ppl-utd4-stop-at-contact_s{}",
    "video + PPL, stop at the rim, 160 branches": "docs/pegstop22/ppl-utd4-stop-at-contact-160_s{}",
}


def main(n: int) -> None:
    print("| peg insertion, seeds 0-1 | mean success at 1k ... | area (per seed) | admitted by then (per seed) |")
    print("|---|---|---|---|")
    for name, pattern in ROWS.items():
        curves, admitted = [], []
        for seed in (0, 1):
            run = pattern.format(seed)
            with open(f"{run}/eval.csv") as f:
                at = {int(float(r["env_steps"])): float(r["success_rate"]) for r in csv.DictReader(f)}
            curves.append([at[k] for k in range(1000, n + 1, 1000)])
            try:
                with open(f"{run}/ppl.csv") as f:
                    by = [r for r in csv.DictReader(f) if int(float(r["learner_step"])) <= 4 * n]
                admitted.append(f"{int(float(by[-1]['admitted'])):,}")
            except FileNotFoundError:
                admitted.append("-")
        mean = [sum(c) / 2 for c in zip(*curves, strict=True)]
        area = [sum(c) / len(c) for c in curves]
        print(f"| {name} | {' '.join(f'{m:.2f}' for m in mean)} | {sum(area) / 2:.3f} ({area[0]:.3f}, {area[1]:.3f}) "
              f"| {', '.join(admitted)} |")


if __name__ == "__main__":
    main(int(sys.argv[1]))
