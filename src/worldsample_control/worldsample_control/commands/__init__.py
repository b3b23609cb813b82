"""Command-line subcommands of the umbrella `worldsample` tool (each module: add_arguments, run)."""
