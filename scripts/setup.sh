#!/usr/bin/env bash
# WorldSample set-up: one command on a fresh Debian 12 machine with Python 3.11, gcc and cmake.
#   bash scripts/setup.sh
# Creates .venv, installs the pinned dependencies (ROS 2 Kilted wheels, colcon, PyTorch CPU,
# MuJoCo, rosbags, ...), fixes the ROS wheels' CMake include paths, and `colcon build`s the
# workspace into install/. Idempotent: a second run only checks and rebuilds what changed.
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

step "CMake include paths of the ROS 2 wheels"
python "$ROOT/scripts/fix_ros_cmake_paths.py" "$VENV"

step "colcon build (worldsample_msgs, worldsample_control, worldsample_worldmodel, worldsample_learner, worldsample_bringup)"
export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV
cd "$ROOT"
colcon --log-base "$ROOT/log" build --base-paths src launch --build-base "$ROOT/build" --install-base "$ROOT/install" \
  --symlink-install --event-handlers console_direct- \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
  || die "colcon build failed; the log is in $ROOT/log/latest_build"

step "Done in $(( $(date +%s) - START )) s"
echo "  enter the environment:  source scripts/env.sh"
echo "  check the machine:      worldsample doctor"
echo "  run the tests:          bash scripts/test.sh"
