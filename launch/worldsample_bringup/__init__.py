"""WorldSample bringup: the node graph, launch helpers and the `worldsample` command-line tool."""
