"""The colcon install space holds every package of the workspace, with its node executables."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install"
PACKAGES = ["worldsample_msgs", "worldsample_common", "worldsample_control", "worldsample_worldmodel",
            "worldsample_learner", "worldsample_bringup"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_is_in_the_install_space(name: str) -> None:
    assert (INSTALL / name / "share" / name / "package.xml").is_file(), f"{name} not built: run scripts/setup.sh"
    assert (INSTALL / name / "share" / "ament_index" / "resource_index" / "packages" / name).exists()
    assert any(str(INSTALL / name) == p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)), \
        "install space not sourced: source scripts/env.sh"


@pytest.mark.parametrize("name", [p for p in PACKAGES if p != "worldsample_msgs"])
def test_every_console_script_is_installed_and_imports(name: str) -> None:
    """Each entry point (node executables, `worldsample`) is in install/<pkg>/lib/<pkg> and loads."""
    entry_points = [e for e in importlib.metadata.distribution(name).entry_points if e.group == "console_scripts"]
    for ep in entry_points:
        assert (INSTALL / name / "lib" / name / ep.name).is_file(), f"{name}: executable {ep.name} not installed"
        assert callable(ep.load()), f"{name}: {ep.value} is not callable"


def test_interfaces_are_installed_and_generated() -> None:
    share = INSTALL / "worldsample_msgs" / "share" / "worldsample_msgs"
    msgs = sorted(p.stem for p in (ROOT / "src" / "worldsample_msgs" / "msg").glob("*.msg"))
    for name in msgs:
        assert (share / "msg" / f"{name}.msg").is_file()
    import worldsample_msgs.msg as m
    import worldsample_msgs.srv as s

    for name in msgs:
        assert hasattr(m, name), f"worldsample_msgs.msg.{name} not generated"
    assert hasattr(s, "ResetEpisode") and hasattr(s, "RequestSyntheticRollouts")
    assert m.Transition.SOURCE_DEMO == 2 and m.EpisodeInfo.EVENT_END == 1


def test_bag_typestore_matches_the_built_messages() -> None:
    """The rosbags schema and the rclpy classes come from the same .msg files: same fields."""
    from worldsample_common.core import bag_io

    import worldsample_msgs.msg as m

    store = bag_io.typestore()
    for path in (ROOT / "src" / "worldsample_msgs" / "msg").glob("*.msg"):
        rclpy_fields = list(getattr(m, path.stem).get_fields_and_field_types())
        bag_fields = [f[0] for f in store.fielddefs[f"worldsample_msgs/msg/{path.stem}"][1]]
        assert rclpy_fields == bag_fields, path.stem
