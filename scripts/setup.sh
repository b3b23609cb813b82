#!/usr/bin/env bash
# WorldSample set-up: one command on a fresh Debian 12 machine with Python 3.11, gcc and cmake.
#   bash scripts/setup.sh
# Creates .venv, installs the pinned dependencies (ROS 2 Kilted wheels, colcon, PyTorch CPU,
# MuJoCo, rosbags, ...), fixes the ROS wheels' CMake include paths, and `colcon build`s the
# workspace into install/. Idempotent: a second run only checks and rebuilds what changed.
#
#   WORLDSAMPLE_ROS2_UPSTREAM=DIR bash scripts/setup.sh
# also installs the upstream ROS 2 Python packages that PyPI lacks (the `ros2` CLI, launch,
# launch_ros, launch_testing) from their sources in DIR (CI: ../shared/ros2-upstream) and builds
# their composition_interfaces, so `ros2 launch worldsample_bringup ...` and the launch tests run.
# A machine whose Python already imports launch_ros (a full ROS 2 install) keeps its own.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${WORLDSAMPLE_VENV:-$ROOT/.venv}
REQ=$ROOT/scripts/requirements.txt
START=$(date +%s)

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

step "Checking prerequisites"
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY=$cand; break; fi
  done
fi
[ -n "$PY" ] || die "Python 3.11 is required (the ROS 2 Kilted wheels are built for CPython 3.11); install python3.11 or set PYTHON=/path/to/python3.11"
"$PY" -c 'import venv, ensurepip' 2>/dev/null || die "$PY cannot create virtual environments: apt-get install python3.11-venv"
for tool in gcc g++ cmake make git; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: apt-get install build-essential cmake git"
done
"$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || die "Python headers are missing (needed to build worldsample_msgs' Python bindings): apt-get install python3.11-dev"
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "  installing Mesa EGL for headless MuJoCo rendering"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libgl1-mesa-dri libegl-mesa0 >/dev/null \
      || die "apt-get install libegl1 libgl1-mesa-dri failed"
  else
    die "libEGL is missing (headless MuJoCo rendering): sudo apt-get install libegl1 libgl1-mesa-dri"
  fi
fi
echo "  $($PY --version), gcc $(gcc -dumpversion), $(cmake --version | head -1)"

step "Virtual environment: $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  echo "  created"
else
  echo "  exists"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

step "Python dependencies (scripts/requirements.txt)"
STAMP=$VENV/.worldsample-requirements.sha256
WANT=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  python -m pip install --disable-pip-version-check -q -r "$REQ" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
  python -m pip show ros-kilted-rclpy >/dev/null 2>&1 || die "pip could not install the pinned dependencies (see above)"
  # gym-hil only for its Franka Panda MJCF model and meshes; its own dependencies are not needed.
  python -m pip install --disable-pip-version-check -q --no-deps gym-hil==0.1.14 2>&1 | grep -v "is ignored" || true
  python -c 'import rclpy, torch, mujoco, rosbags, cv2, skimage' || die "installed packages do not import (see above)"
  python -c 'import importlib.util as u, pathlib, sys; p = pathlib.Path(u.find_spec("gym_hil").submodule_search_locations[0]); sys.exit(not (p / "assets" / "panda.xml").exists())' \
    || die "gym-hil's Franka Panda model (gym_hil/assets/panda.xml) is missing"
  echo "$WANT" > "$STAMP"
  echo "  installed"
else
  echo "  up to date"
fi

step "Upstream ROS 2 Python packages (ros2 CLI, launch, launch_ros, launch_testing)"
UPSTREAM=${WORLDSAMPLE_ROS2_UPSTREAM:-}
EXTRA_PATHS=()
UP_PKGS=(launch launch_xml launch_yaml launch_testing launch_ros ros2launch launch_testing_ros ros2cli ros2pkg
         ros2run ros2topic ros2node ros2param ros2service ros2interface rosidl_runtime_py)
if [ -n "$UPSTREAM" ]; then
  [ -d "$UPSTREAM/launch_ros" ] && [ -d "$UPSTREAM/composition_interfaces" ] \
    || die "WORLDSAMPLE_ROS2_UPSTREAM=$UPSTREAM does not hold the upstream sources (launch_ros/, composition_interfaces/, ...)"
  UP_REQ=$ROOT/scripts/requirements-ros2-upstream.txt
  UP_STAMP=$VENV/.worldsample-ros2-upstream.sha256
  UP_WANT=$( (sha256sum "$UP_REQ"; for p in "${UP_PKGS[@]}"; do find "$UPSTREAM/$p" -type f -name '*.py' -exec sha256sum {} +; done) | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$UP_STAMP" 2>/dev/null)" != "$UP_WANT" ]; then
    python -m pip install --disable-pip-version-check -q -r "$UP_REQ" || die "pip could not install $UP_REQ"
    args=()
    for p in "${UP_PKGS[@]}"; do args+=("$UPSTREAM/$p"); done
    python -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation "${args[@]}" \
      || die "pip could not install the upstream ROS 2 packages from $UPSTREAM"
    echo "$UP_WANT" > "$UP_STAMP"
    echo "  installed from $UPSTREAM"
  else
    echo "  up to date ($UPSTREAM)"
  fi
  EXTRA_PATHS=("$UPSTREAM/composition_interfaces")
elif python -c 'import launch_ros, ros2cli' 2>/dev/null; then
  echo "  present (this Python's own ROS 2)"
else
  echo "  not installed: \`ros2 launch\` and the launch tests need them; rerun with"
  echo "  WORLDSAMPLE_ROS2_UPSTREAM=/path/to/ros2-upstream (a folder of their sources), or use a full ROS 2 install"
fi

step "CMake include paths of the ROS 2 wheels"
python "$ROOT/scripts/fix_ros_cmake_paths.py" "$VENV"

step "colcon build (worldsample_msgs, worldsample_common, worldsample_control, worldsample_worldmodel, worldsample_learner, worldsample_bringup)"
export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
cd "$ROOT"
colcon --log-base "$ROOT/log" build --base-paths src launch "${EXTRA_PATHS[@]}" --build-base "$ROOT/build" --install-base "$ROOT/install" \
  --symlink-install --event-handlers console_direct- \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
  || die "colcon build failed; the log is in $ROOT/log/latest_build"

step "Done in $(( $(date +%s) - START )) s"
echo "  enter the environment:  source scripts/env.sh"
echo "  check the machine:      worldsample doctor"
echo "  run the tests:          bash scripts/test.sh"
