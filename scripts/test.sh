#!/usr/bin/env bash
# The WorldSample test suite:  bash scripts/test.sh [pytest args]
# Runs ruff and pytest over every package (unit tests of the cores and multi-process tests
# that start real rclpy nodes over Fast DDS). Exit code 5 (no test collected) is a failure.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck disable=SC1091
set +u  # colcon's setup scripts read unset variables
source scripts/env.sh || exit 1
set -u
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( ($$ % 100) + 1 ))}
ruff check src launch scripts || { echo "test.sh: ruff found problems" >&2; exit 1; }
python -m pytest --durations=25 "$@"
rc=$?
if [ "$rc" = 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$rc"
