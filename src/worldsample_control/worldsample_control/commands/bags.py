"""`bags`: look at a directory of episode bags, and make bags of a killed recorder readable.

    worldsample bags info runs/push/bags       # episodes per bag, bad bags named
    worldsample bags recover runs/push/bags    # rebuild bags from their write-ahead logs

``info`` prints one line per episode (bag, id, source, task, length, return, success) and one
line per bag that cannot be read, with the reason; exit code 1 when any bag was unreadable.
``recover`` rebuilds every bag under PATH that still has a write-ahead log (the recorder was
killed while writing it) up to its last complete message; the partial files are kept in
``<bag>.incomplete/``. Complete bags are left untouched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="episodes of every bag under PATH; unreadable bags with the reason")
    info.add_argument("path", type=Path, help="a bag directory or a directory of bags")
    rec = sub.add_parser("recover", help="rebuild bags left by a killed recorder from their write-ahead log")
    rec.add_argument("path", type=Path, help="a bag directory or a directory of bags")


def run(args: argparse.Namespace) -> int:
    from ..core import bag_io

    try:
        bags = bag_io.find_bags(args.path)
    except bag_io.BagError as exc:
        print(f"bags: {exc}", file=sys.stderr)
        return 2
    if not bags:
        print(f"bags: no bags under {args.path} (no metadata.yaml nor {bag_io.WAL_NAME})", file=sys.stderr)
        return 2
    if args.action == "recover":
        failed = 0
        for bag in bags:
            if not (bag / bag_io.WAL_NAME).exists():
                continue
            try:
                report = bag_io.recover_bag(bag)
            except bag_io.BagError as exc:
                failed += 1
                print(f"FAILED {bag}: {exc}")
                continue
            print(f"recovered {bag}: {report.detail}")
        if not any((b / bag_io.WAL_NAME).exists() for b in bags) and not failed:
            print(f"nothing to recover: {len(bags)} complete bag(s) under {args.path}")
        return 1 if failed else 0
    bad = 0
    for bag in bags:
        try:
            episodes = bag_io.read_bag_episodes(bag)
        except bag_io.BagError as exc:
            bad += 1
            print(f"UNREADABLE {exc}")
            continue
        for ep in episodes:
            print(f"{bag}  {ep.episode_id}  {ep.source.name}  {ep.task}  length={ep.length}  "
                  f"return={ep.episode_return:.3f}  success={ep.success}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    from worldsample_control.commands import standalone_main

    return standalone_main("worldsample bags", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
