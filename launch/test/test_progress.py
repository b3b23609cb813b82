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
