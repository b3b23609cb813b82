"""Point the ROS 2 wheels' exported CMake targets at this machine's Python and NumPy headers.

The ros-kilted-* wheels were built on a machine whose Python lived elsewhere; their
`share/**/cmake/*.cmake` files name that machine's Python and NumPy include directories, and
CMake then refuses to build an interface package against them. This rewrites those paths to
the local ones (idempotent: a second run changes nothing). Usage: python fix_ros_cmake_paths.py PREFIX
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

PY_INCLUDE = re.compile(r"[^\";]*/include/python3\.\d+")
NP_INCLUDE = re.compile(r"[^\";]*/site-packages/numpy/(?:_core|core)/include")


def fix_prefix(prefix: Path) -> int:
    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    changed = 0
    for path in sorted((prefix / "share").glob("*/cmake/*.cmake")):
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        new = PY_INCLUDE.sub(py_inc, text)
        new = NP_INCLUDE.sub(np_inc, new)
        if new != text:
            path.write_text(new, encoding="utf-8", errors="surrogateescape")
            changed += 1
    return changed


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: fix_ros_cmake_paths.py PREFIX", file=sys.stderr)
        return 2
    prefix = Path(sys.argv[1])
    if not (prefix / "share").is_dir():
        print(f"fix_ros_cmake_paths: {prefix}/share does not exist; is PREFIX the virtual environment?", file=sys.stderr)
        return 2
    n = fix_prefix(prefix)
    print(f"  CMake include paths: {n} file(s) rewritten to {sysconfig.get_paths()['include']} and numpy's headers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
