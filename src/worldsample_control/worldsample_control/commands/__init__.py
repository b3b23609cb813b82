"""Command-line subcommands of the umbrella `worldsample` tool (each module: add_arguments, run)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def standalone_main(prog: str, doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
                    run: Callable[[argparse.Namespace], int], argv: Sequence[str] | None = None) -> int:
    """Run a subcommand module on its own (``python -m ...``), with the parser `worldsample` would build."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
