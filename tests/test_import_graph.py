"""The import picture of the workspace: no upward imports, no sibling-private imports.

Every module of every package (``src/*/<package>/`` and ``launch/worldsample_bringup/``, tests not
included) is parsed with `ast`; each import (absolute or relative, at module level or inside a
function) becomes an edge ``module -> imported module``. The rules:

1. **Packages are layered**; a package imports only packages below it::

       worldsample_msgs < worldsample_common < worldsample_control < worldsample_worldmodel
                        < worldsample_learner < worldsample_bringup

   (the bringup package composes the others, so nothing imports it).
2. **ROS-free cores**: a ``<package>.core`` module imports neither ``rclpy`` nor its own package's
   ``nodes`` / ``commands`` / ``drivers`` (the layers that sit on top of the core).
3. **No sibling-private imports**: a name or module with a leading underscore is private to its
   package; another package never imports it.
4. **Cores of the learner and the world model do not build the simulator**: they take an `Env`
   (``worldsample_common.env_protocol``); the MuJoCo tasks (``worldsample_control.core.sim``,
   ``mujoco``) are chosen by the drivers (``drivers``, commands, bench, bringup).

A failure lists every offending edge as ``file:line: importer -> imported (rule)``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABOVE_CORE = ("nodes", "commands", "drivers")  # a package's layers on top of its ROS-free core
LAYERS = ["worldsample_msgs", "worldsample_common", "worldsample_control", "worldsample_worldmodel",
          "worldsample_learner", "worldsample_bringup"]
RANK = {name: i for i, name in enumerate(LAYERS)}
SIM_FREE_CORES = ("worldsample_learner.core", "worldsample_worldmodel.core")
SIMULATOR = ("worldsample_control.core.sim", "mujoco")


@dataclass(frozen=True)
class Edge:
    file: Path
    line: int
    importer: str  # dotted module name of the importing file
    imported: str  # dotted module name imported
    names: tuple[str, ...]  # names taken with `from X import a, b` (empty for `import X`)

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}: {self.importer} -> {self.imported}"


def package_dirs() -> list[Path]:
    dirs = [p / p.name for p in sorted((ROOT / "src").iterdir()) if (p / p.name / "__init__.py").is_file()]
    return dirs + [ROOT / "launch" / "worldsample_bringup"]


def module_name(path: Path, package_dir: Path) -> str:
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def edges_of(path: Path, package_dir: Path) -> list[Edge]:
    importer = module_name(path, package_dir)
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [Edge(path, node.lineno, importer, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = importer.split(".") if is_pkg else importer.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(Edge(path, node.lineno, importer, mod, tuple(a.name for a in node.names)))
    return out


def all_edges() -> list[Edge]:
    edges = []
    for d in package_dirs():
        for f in sorted(d.rglob("*.py")):
            edges += edges_of(f, d)
    return edges


def _top(module: str) -> str:
    return module.split(".")[0]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(edges: list[Edge]) -> list[str]:
    bad = []
    for e in edges:
        src, dst = _top(e.importer), _top(e.imported)
        if src in RANK and dst in RANK and RANK[dst] > RANK[src]:
            bad.append(f"{e.where()} (upward: {src} sits below {dst})")
        if _under(e.importer, f"{src}.core"):
            if dst == "rclpy" or any(_under(e.imported, f"{src}.{layer}") for layer in ABOVE_CORE):
                bad.append(f"{e.where()} (the ROS-free core imports a layer above it)")
            # `from worldsample_x import nodes`
            if e.imported == src and set(ABOVE_CORE) & set(e.names):
                bad.append(f"{e.where()} (the ROS-free core imports a layer above it)")
        if dst in RANK and dst != src:
            private = [p for p in e.imported.split(".") if p.startswith("_") and not p.startswith("__")]
            private += [n for n in e.names if n.startswith("_") and not n.startswith("__")]
            if private:
                bad.append(f"{e.where()} (private to {dst}: {', '.join(private)})")
        if any(_under(e.importer, c) for c in SIM_FREE_CORES):
            full = [e.imported] + [f"{e.imported}.{n}" for n in e.names]
            if any(_under(m, s) for m in full for s in SIMULATOR):
                bad.append(f"{e.where()} (a learning core builds the simulator; take an Env instead)")
    return bad


def test_every_package_is_in_a_layer() -> None:
    names = {d.name for d in package_dirs()}
    assert names <= set(RANK), f"packages without a layer in {__name__}.LAYERS: {sorted(names - set(RANK))}"
    assert len(all_edges()) > 100, "the scan found almost no imports; is the layout the one this test expects?"


def test_no_upward_or_sibling_private_imports() -> None:
    bad = violations(all_edges())
    assert not bad, "import rules broken (see tests/test_import_graph.py):\n  " + "\n  ".join(bad)


def test_the_rules_catch_what_they_name() -> None:
    """Each rule fires on a made-up edge, so a green run means something."""
    f = ROOT / "src" / "x.py"
    cases = {
        "upward": Edge(f, 1, "worldsample_control.core.actor", "worldsample_learner.core.policy", ("load_policy",)),
        "layer above it": Edge(f, 2, "worldsample_learner.core.train", "rclpy", ()),
        "private": Edge(f, 3, "worldsample_bringup.loop", "worldsample_control.commands.sim", ("_node_env",)),
        "simulator": Edge(f, 4, "worldsample_learner.core.train", "worldsample_control.core", ("sim",)),
    }
    for word, edge in cases.items():
        found = violations([edge])
        assert any(word in v for v in found), (word, found)
    ok = Edge(f, 5, "worldsample_learner.core.train", "worldsample_common.episode", ("Episode",))
    assert violations([ok]) == []
