"""The loop's progress line and CSV carry the world model's baseline (copy-last-frame) beside its fidelity."""

from __future__ import annotations

import csv

from worldsample_bringup.progress import FIELDS, LoopProgress, ProgressCSV


def test_progress_line_shows_copy_last_frame_beside_the_model():
    p = LoopProgress()
    p.on_world_model("wm-000002", [25.5, 22.0], [0.91, 0.85], False, [23.1, 20.4], [0.899, 0.851])
    line = p.line()
    assert "PSNR  25.5 dB (copy 23.1)" in line and "SSIM 0.91 (copy 0.90)" in line
    row = p.row()
    assert row["wm_copy_psnr"] == 23.1 and row["wm_psnr"] == 25.5
    assert "feature skill" not in line  # not read with a pixel encoder (a state policy)
    p.on_world_model("wm-000003", [25.5], [0.91], False, [23.1], [0.899], [-2.56, -2.2])
    assert "encoder-feature skill -2.56" in p.line() and p.row()["wm_feature_skill"] == -2.56


def test_progress_csv_resumed_with_an_older_header_keeps_its_columns(tmp_path):
    path = tmp_path / "progress.csv"
    old = [f for f in FIELDS if not f.startswith("wm_copy")]
    path.write_text(",".join(old) + "\n")
    w = ProgressCSV(path)
    p = LoopProgress()
    p.on_world_model("wm-000001", [24.0], [0.9], False, [23.0], [0.89])
    w.append(p.row())
    w.close()
    rows = list(csv.reader(path.open()))
    assert rows[0] == old and len(rows[1]) == len(old)  # no shifted columns under the old header


def test_static_frames_read_static_and_the_line_names_what_each_number_counts():
    from worldsample_bringup.progress import psnr_value

    p = LoopProgress(total=60)
    p.on_world_model("wm-000003", [25.4], [0.93], False, [float("inf")], [1.0])
    p.on_ppl(0.0, 0.6, 0, 712, 1.0, 2.0)
    line = p.line()
    assert "(copy static)" in line and "inf" not in line
    assert "episodes    0/60" in line and "synthetic share 0.00, admitted 0, rejected 712" in line
    assert ") of" not in line
    assert psnr_value(float("inf")) == "static" and psnr_value(float("nan")) is None and psnr_value(25.0) == 25.0
    assert "PSNR     - dB (copy    -)" in LoopProgress().line()  # not measured yet


def test_iteration_is_the_checkpoint_number_so_a_resumed_run_continues_it():
    p = LoopProgress()
    p.on_checkpoint("policy-000012")  # the policy a resumed run starts with
    assert p.iteration == 12 and "iter  12 | policy  policy-000012" in p.line()
    p.on_checkpoint("policy-000012")  # announced again: nothing changes
    p.on_checkpoint("policy-000013")
    assert p.iteration == 13
    p.on_checkpoint("hand-tuned")  # a version without a number: one more
    assert p.iteration == 14


def test_plot_draws_copy_last_frame_iteration_marks_and_static_frames(tmp_path):
    from worldsample_bringup.progress import plot_progress, read_progress

    path = tmp_path / "progress.csv"
    w = ProgressCSV(path)
    p = LoopProgress()
    for i in range(6):
        if i % 2 == 0:
            p.on_checkpoint(f"policy-{i // 2 + 1:06d}")
        p.on_episode(10, 0.0, i > 3, p.policy_version)
        p.on_world_model("wm-000001", [24.0 + i], [0.9], False, [float("inf") if i < 3 else 23.0], [0.9])
        w.append(p.row())
    w.close()
    rows = read_progress(path)
    assert [r["iteration"] for r in rows] == [1, 1, 2, 2, 3, 3] and rows[0]["wm_copy_psnr"] == float("inf")
    png = plot_progress(path, tmp_path / "progress.png")
    assert png.stat().st_size > 0


def test_the_smoothed_success_line_averages_the_rolling_rate_once_per_episode(tmp_path):
    from worldsample_bringup.progress import SMOOTH_EPISODES, _episode_smoothed, plot_progress, read_progress

    path = tmp_path / "progress.csv"
    w = ProgressCSV(path)
    p = LoopProgress(window=1)  # the rolling rate is the last episode's outcome
    n = SMOOTH_EPISODES + 10
    for e in range(n):
        p.on_episode(10, 0.0, e % 2 == 0, "policy-000001")
        w.append(p.row())
        p.on_ppl(0.1, 0.5, e, 0, 1.0, 2.0)  # a second event in the same episode: counted once
        w.append(p.row())
    w.close()
    rows = read_progress(path)
    smooth = _episode_smoothed(rows, [r["success_rate"] for r in rows])
    assert len(smooth) == n - SMOOTH_EPISODES + 1
    assert smooth[0] == (10.0 * SMOOTH_EPISODES, 0.5) and all(abs(v - 0.5) <= 1 / SMOOTH_EPISODES for _, v in smooth)
    assert plot_progress(path, tmp_path / "progress.png").stat().st_size > 0
