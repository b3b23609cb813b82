# Enter the WorldSample environment:  source scripts/env.sh
# Activates .venv, sources the colcon install space (worldsample_msgs + our packages) and sets
# the ROS 2 / MuJoCo variables. Afterwards `worldsample --help` and `ros2`-style node
# executables (install/<pkg>/lib/<pkg>/<node>) work.
_ws_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_ws_venv=${WORLDSAMPLE_VENV:-$_ws_root/.venv}
if [ ! -x "$_ws_venv/bin/python" ] || [ ! -f "$_ws_root/install/setup.bash" ]; then
  echo "env.sh: the workspace is not set up yet; run: bash scripts/setup.sh" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_ws_venv/bin/activate"
export AMENT_PREFIX_PATH="$_ws_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_ws_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
# shellcheck disable=SC1091
source "$_ws_root/install/setup.bash"
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export MUJOCO_GL=${MUJOCO_GL:-egl}
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
export WORLDSAMPLE_ROOT=$_ws_root
# node executables for `python -m`-free use, like `ros2 run` would find them
for _ws_pkg in worldsample_control worldsample_worldmodel worldsample_learner worldsample_bringup; do
  [ -d "$_ws_root/install/$_ws_pkg/lib/$_ws_pkg" ] && PATH="$_ws_root/install/$_ws_pkg/lib/$_ws_pkg:$PATH"
done
export PATH
unset _ws_root _ws_venv _ws_pkg
