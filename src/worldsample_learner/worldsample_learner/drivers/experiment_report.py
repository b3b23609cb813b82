"""`worldsample experiment`'s reporting: curves over seeds, the comparison tables, plots and results.md sections
(plain functions over results dicts, unit-tested without running anything)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .experiment_config import BASELINE, MODES, ExperimentConfig


def mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Mean success over seeds at the evaluation steps all runs share."""
    if not curves:
        return []
    steps = sorted(set.intersection(*[{int(s) for s, _ in c} for c in curves]))
    by = [dict((int(s), float(v)) for s, v in c) for c in curves]
    return [(s, sum(d[s] for d in by) / len(by)) for s in steps]


def steps_to_reach(curve: list[tuple[int, float]], level: float) -> int | None:
    """First evaluation step whose success is >= ``level`` (None if never)."""
    for s, v in curve:
        if v >= level - 1e-9:
            return int(s)
    return None


def smoothed(curve: list[tuple[int, float]], window: int = 3) -> list[tuple[int, float]]:
    """``curve`` with each success the mean over ``window`` neighbouring evaluations, centred (fewer at the ends).
    A 10-episode evaluation moves by ~0.15; the first step at which a raw mean curve touches a level is decided by
    one such point, the smoothed curve's by three."""
    h = window // 2
    vals = [v for _, v in curve]
    out = []
    for i, (s, _) in enumerate(curve):
        near = vals[max(0, i - h):i + h + 1]
        out.append((s, sum(near) / len(near)))
    return out


def at_budget(res: dict[str, Any], env_steps: int) -> dict[str, Any]:
    """A run's results as they stood at ``env_steps`` real steps: a longer run (e.g. the RL-only runs of
    ``--config rl`` at 20k, reused for a comparison at 10k) is cut to the evaluations up to that budget
    and its final success is the last of them. SAC's training does not depend on the total budget, so
    this is the run that a ``--env-steps`` run would have been; shorter runs are returned unchanged."""
    if int(res["env_steps"]) <= env_steps:
        return res
    out = dict(res)
    out["success_curve"] = [(int(s), float(v)) for s, v in res["success_curve"] if int(s) <= env_steps]
    if "return_curve" in res:
        out["return_curve"] = [(int(s), float(v)) for s, v in res["return_curve"] if int(s) <= env_steps]
    if not out["success_curve"]:
        raise ValueError(f"{res.get('task')} {res.get('mode')} seed {res.get('seed')}: no evaluation at or "
                         f"before {env_steps} steps")
    out.update(final_success_rate=out["success_curve"][-1][1], env_steps=env_steps,
               cut_from_env_steps=int(res["env_steps"]))
    return out


def summarize_policy(results: list[dict[str, Any]], baseline: str = BASELINE) -> dict[str, Any]:
    """Per task and mode: mean curve, final success (mean, per seed), steps to the baseline's final success."""
    out: dict[str, Any] = {}
    for task in sorted({r["task"] for r in results}):
        rows = [r for r in results if r["task"] == task]
        modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
        modes += sorted({r["mode"] for r in rows} - set(modes))
        per: dict[str, Any] = {}
        for m in modes:
            runs = sorted((r for r in rows if r["mode"] == m), key=lambda r: r["seed"])
            curve = mean_curve([r["success_curve"] for r in runs])
            finals = [float(r["final_success_rate"]) for r in runs]
            rcurve = mean_curve([r["return_curve"] for r in runs]) if all("return_curve" in r for r in runs) else []
            per[m] = {"curve": curve, "final": sum(finals) / len(finals), "finals": finals, "return_curve": rcurve,
                      "seed_curves": [[(int(st), float(v)) for st, v in r["success_curve"]] for r in runs],
                      "final_return": rcurve[-1][1] if rcurve else float("nan"),
                      "seeds": [r["seed"] for r in runs], "env_steps": max(int(r["env_steps"]) for r in runs),
                      "wall_s": sum(float(r.get("wall_s", 0)) for r in runs), "synthetic": _synthetic_stats(runs)}
        if baseline in per:
            target = per[baseline]["final"]
            base_steps = steps_to_reach(per[baseline]["curve"], target) if target > 0 else None
            for d in per.values():
                s = steps_to_reach(d["curve"], target) if target > 0 else None
                d["steps_to_baseline_final"] = s
                d["fraction_of_baseline_steps"] = None if s is None or not base_steps else s / base_steps
                d["delta_vs_baseline"] = d["final"] - target
            # the same on curves smoothed over 3 evaluations (the target: the baseline's smoothed final)
            base = smoothed(per[baseline]["curve"])
            target_s = base[-1][1] if base else 0.0
            base_s = steps_to_reach(base, target_s) if target_s > 0 else None
            for d in per.values():
                s = steps_to_reach(smoothed(d["curve"]), target_s) if target_s > 0 else None
                d["fraction_of_baseline_steps_smoothed"] = None if s is None or not base_s else s / base_s
        out[task] = per
    return out


def _synthetic_stats(runs: list[dict[str, Any]]) -> dict[str, float] | None:
    """Mean over runs of what PPL did with the synthetic data (None for runs without any)."""
    import math

    st = [r.get("ppl_status") or {} for r in runs]
    if not all(s.get("admitted", 0) + s.get("rejected", 0) > 0 for s in st):
        return None

    def mean(xs: list[float]) -> float:
        xs = [x for x in xs if math.isfinite(x)]
        return sum(xs) / len(xs) if xs else float("nan")

    return {"admitted": mean([s["admitted"] for s in st]), "rejected": mean([s["rejected"] for s in st]),
            "admission_rate": mean([s["admitted"] / (s["admitted"] + s["rejected"]) for s in st]),
            "share": mean([float(s["synthetic_share"]) for s in st]),
            "q_gap": mean([float(s["q_synthetic"]) - float(s["q_real"]) for s in st])}


def synthetic_table(summary: dict[str, Any]) -> str:
    """What happened to the synthetic data: admitted, share of the batch, value inflation (Q syn - Q real)."""
    lines = ["| task | mode | synthetic transitions admitted (of scored) | synthetic share of the batch at the end "
             "| Q on synthetic - Q on real data at the end |", "|---|---|---|---|---|"]
    for task, per in summary.items():
        for m, d in per.items():
            x = d.get("synthetic")
            if x:
                lines.append(f"| {task} | {m} | {x['admitted']:.0f} of {x['admitted'] + x['rejected']:.0f} "
                             f"({100 * x['admission_rate']:.0f} %) | {x['share']:.2f} | {x['q_gap']:+.3f} |")
    return "\n".join(lines)


def policy_table(summary: dict[str, Any], baseline: str = BASELINE) -> str:
    lines = [f"| task | mode | final success (mean over seeds) | per seed | vs {baseline} | steps to {baseline}'s final "
             f"| fraction of {baseline}'s steps | the same, curves smoothed over 3 evaluations "
             "| final eval return (shaped, mean) |", "|---|---|---|---|---|---|---|---|---|"]
    for task, per in summary.items():
        base_zero = per.get(baseline, {}).get("final", 1.0) == 0.0
        for m, d in per.items():
            s = d.get("steps_to_baseline_final")
            f = d.get("fraction_of_baseline_steps")
            fs = d.get("fraction_of_baseline_steps_smoothed")
            reach = s if s is not None else (f"n/a: {baseline} ends at 0" if base_zero else "not reached")
            lines.append(f"| {task} | {m} | {d['final']:.2f} | {', '.join(f'{x:.1f}' for x in d['finals'])} "
                         f"| {d.get('delta_vs_baseline', float('nan')):+.2f} | {reach} "
                         f"| {f'{f:.2f}' if f is not None else '-'} | {f'{fs:.2f}' if fs is not None else '-'} "
                         f"| {d.get('final_return', float('nan')):.2f} |")
    return "\n".join(lines)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_policy(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(summary), figsize=(5.5 * len(summary), 7.2), squeeze=False)
    for col, (task, per) in enumerate(summary.items()):
        for row, key, label in ((0, "curve", "eval success rate"), (1, "return_curve", "eval return (shaped)")):
            ax = axes[row][col]
            for m, d in per.items():
                pts = d.get(key) or []
                xs, ys = zip(*pts, strict=True) if pts else ((), ())
                n = len(d["seeds"])  # variants of an experiment in progress may have fewer seeds
                line = ax.plot(xs, ys, marker="o", label=f"{m} ({n} seed{'s' if n != 1 else ''})")[0]
                if row == 0 and len(d.get("seed_curves") or []) > 1 and xs:  # spread over seeds: min..max
                    by = [dict(c) for c in d["seed_curves"]]
                    lo = [min(c.get(x, float("nan")) for c in by) for x in xs]
                    hi = [max(c.get(x, float("nan")) for c in by) for x in xs]
                    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
            ax.set(title=f"{task}: {label} (mean over seeds" + (", band: min-max)" if row == 0 else ")"),
                   xlabel="real environment steps", ylabel=label)
            ax.grid(alpha=0.3)
            ax.legend()
    return _save(fig, path)


def plot_paper_figures(summary: dict[str, Any], path: Path, baseline: str = BASELINE) -> Path:
    """The paper's two figures: each mode's final success minus the baseline's (mean over seeds, with
    every seed's difference as a dot), and the fraction of the baseline's real steps a mode needs to
    reach the baseline's final success (mean curves; "not reached" where it never does)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(summary)
    modes = [m for m in dict.fromkeys(m for per in summary.values() for m in per) if m != baseline]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(modes))
    for i, m in enumerate(modes):
        xs = [t + (i - (len(modes) - 1) / 2) * width for t in range(len(tasks))]
        deltas = [summary[t].get(m, {}).get("delta_vs_baseline", float("nan")) for t in tasks]
        bars = ax1.bar(xs, deltas, width, label=m)
        for x, t in zip(xs, tasks, strict=True):
            d, b = summary[t].get(m), summary[t].get(baseline)
            if d and b and len(d["finals"]) == len(b["finals"]):
                ax1.scatter([x] * len(d["finals"]), [f - g for f, g in zip(d["finals"], b["finals"], strict=True)],
                            color="k", s=10, zorder=3)
        fracs = [summary[t].get(m, {}).get("fraction_of_baseline_steps") for t in tasks]
        ax2.bar(xs, [f if f is not None else 0.0 for f in fracs], width, label=m, color=bars.patches[0].get_facecolor())
        for x, f in zip(xs, fracs, strict=True):
            ax2.annotate("not reached" if f is None else f"{f:.2f}", (x, f or 0.0), ha="center", va="bottom",
                         fontsize=8, rotation=90 if f is None else 0)
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set(title=f"final success minus {baseline} (bars: mean; dots: per seed pair)", xticks=range(len(tasks)),
            xticklabels=tasks, ylabel="success difference")
    ax2.axhline(1, color="k", lw=0.8, ls="--")
    ax2.set(title=f"fraction of {baseline}'s steps to reach its final success", xticks=range(len(tasks)),
            xticklabels=tasks, ylabel="fraction (1 = as many steps)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, axis="y")
        ax.legend()
    return _save(fig, path)


def worldmodel_table(rows: list[dict[str, Any]]) -> str:
    """Per task: copy-last-frame, demo-only and loop post-trained (both cameras, then each), the loop model's
    gain over copy-last-frame, its uncertainty-error rank correlation and its post-training time per iteration."""
    hs = rows[0]["fidelity"]["horizons"] if rows else []
    head = "| task | model | camera | " + " | ".join(f"PSNR h={h} [dB] | SSIM h={h}" for h in hs) + " |"
    lines = [head, "|" + "---|" * (3 + 2 * len(hs))]

    def cells(ps, ss, fmt_p="{:.2f}", fmt_s="{:.3f}"):
        return " | ".join(f"{fmt_p.format(p)} | {fmt_s.format(s)}" for p, s in zip(ps, ss, strict=True))

    for r in rows:
        f = r["fidelity"]
        lines.append(f"| {r['task']} | {r['model']} | both | {cells(f['psnr'], f['ssim'])} |")
        for cam, v in f["per_camera"].items():
            lines.append(f"| {r['task']} | {r['model']} | {cam} | {cells(v['psnr'], v['ssim'])} |")
        if "gain" in f:
            bold = "**" if r["model"] == "loop post-trained" else ""
            lines.append(f"| {r['task']} | {bold}{r['model']} - copy{bold} | both | "
                         f"{cells(f['gain']['psnr'], f['gain']['ssim'], '{:+.2f}', '{:+.3f}')} |")
    lines.append("")
    lines.append("| task | model | " + " | ".join(f"rho(uncertainty, error) h={h}" for h in hs)
                 + " | post-training per loop iteration |")
    lines.append("|" + "---|" * (3 + len(hs)))
    for r in rows:
        f = r["fidelity"]
        if "spearman" in f:
            its = ", ".join(f"{s:.0f} s" for s in r.get("iteration_s", [])) or "-"
            lines.append(f"| {r['task']} | {r['model']} | " + " | ".join(
                "-" if x is None or x != x else f"{x:.2f}" for x in f["spearman"]) + f" | {its} |")
    return "\n".join(lines)


def write_section(path: Path, which: str, cmd: str, table: str, plot: Path | None, wall: float,
                   cfg: ExperimentConfig) -> None:
    """Replace this experiment's section of results.md (the other one is kept)."""
    start, end = f"<!-- {which}:start -->", f"<!-- {which}:end -->"
    if which == "policy":
        title = "Policy: PPL vs RL-only vs naive augmentation"
        what = (f"seeds {', '.join(map(str, cfg.seeds))}; {cfg.env_steps} real steps per run; {cfg.demos} demos")
    else:
        title = "World model: copy-last-frame vs demo-only vs loop post-trained"
        what = (f"{cfg.demos} expert demos, pre-training {cfg.wm_pretrain_steps} steps; {cfg.wm_real_episodes} real "
                f"rollouts (expert + N(0, {cfg.wm_real_noise})) arriving {cfg.wm_min_new_episodes} at a time, "
                f"{cfg.wm_posttrain_steps} post-training steps each; held out: {cfg.heldout_episodes} rollouts of "
                f"the expert + N(0, {cfg.wm_heldout_noise}), other seeds")
    body = [start, f"### {title}", "", f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}, {wall / 60:.1f} min, config "
            f"`{cfg.name}`: tasks {', '.join(cfg.tasks)}; {what}; camera(s) {', '.join(cfg.cameras)} at "
            f"{cfg.image_size} px)", "", table, ""]
    if plot is not None:
        body += [f"![success vs steps]({plot})", ""]
    body.append(end)
    text = path.read_text() if path.exists() else "# WorldSample results (generated by `worldsample experiment`)\n\n"
    if start in text and end in text:
        text = text[:text.index(start)] + "\n".join(body) + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(body) + "\n"
    path.write_text(text)
