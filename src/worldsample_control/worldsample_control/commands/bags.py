"""`bags`: look at a directory of episode bags, and make bags of a killed recorder readable.

    worldsample bags info runs/push/bags       # episodes per bag, bad bags named
    worldsample bags recover runs/push/bags    # rebuild bags from their write-ahead logs

``info`` prints one line per episode (bag, id, source, task, length, return, success, and what
the bag is: ``complete``, ``cut: <reason>`` for an episode stopped early (Ctrl-C, restart, missing
transitions), ``recovered: ...`` for one rebuilt after a crash, ``TRUNCATED`` for a cut-short
.mcap) and one line per bag that cannot be read, with the reason (a killed recorder, or a disk
that was full); exit code 1 when any bag was unreadable. A summary line counts them.
``recover`` rebuilds every bag under PATH that still has a write-ahead log (the recorder was
killed while writing it, or the disk filled up) up to its last complete message, and every bag
whose .mcap is truncated as far as its complete records go; the partial files are kept in
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
    from worldsample_common.core import bag_io

    try:
        bags = bag_io.find_bags(args.path)
    except bag_io.BagError as exc:
        print(f"bags: {exc}", file=sys.stderr)
        return 2
    if not bags:
        print(f"bags: no bags under {args.path} (no metadata.yaml nor {bag_io.WAL_NAME})", file=sys.stderr)
        return 2
    def damaged(bag: Path) -> bool:
        if (bag / bag_io.WAL_NAME).exists():
            return True
        mcap = bag_io.mcap_file(bag) if (bag / "metadata.yaml").exists() else None
        return mcap is not None and bag_io.mcap_truncated(mcap)

    if args.action == "recover":
        failed = 0
        todo = [b for b in bags if damaged(b)]
        for bag in todo:
            try:
                report = bag_io.recover_bag(bag)
            except bag_io.BagError as exc:
                failed += 1
                print(f"FAILED {bag}: {exc}")
                continue
            print(f"recovered {bag}: {report.detail}")
        if not todo:
            print(f"nothing to recover: {len(bags)} complete bag(s) under {args.path}")
        return 1 if failed else 0
    bad = 0
    kinds: dict[str, int] = {}
    for bag in bags:
        try:
            episodes = bag_io.read_bag_episodes(bag)
        except bag_io.BagError as exc:
            bad += 1
            print(f"UNREADABLE {exc}")
            continue
        status = bag_io.bag_status(bag)
        for ep in episodes:
            what = status
            reason = ep.extras.get("reason", "")
            if status == "closed" and reason.startswith("cut"):  # no WorldSample status: the stream tells
                what = reason
            kind = what.split(":")[0].split(" ")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
            print(f"{bag}  {ep.episode_id}  {ep.source.name}  {ep.task}  length={ep.length}  "
                  f"return={ep.episode_return:.3f}  success={ep.success}  [{what}]")
    parts = [f"{n} {k}" for k, n in sorted(kinds.items())] + ([f"{bad} unreadable"] if bad else [])
    print(f"{sum(kinds.values())} episode(s) in {len(bags)} bag(s): {', '.join(parts) or 'none'}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    from worldsample_control.commands import standalone_main

    return standalone_main("worldsample bags", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
