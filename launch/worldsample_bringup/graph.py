"""The WorldSample node graph, described once as data.

A `NodeSpec` names a ROS 2 node (package, executable, node name, parameters, remappings).
`process_runner.ProcessGraph` starts specs as subprocesses (no `launch` needed); the launch
files turn the same specs into `launch_ros.actions.Node` actions, so both paths agree.

`sim_graph(...)` is the simulated robot loop: the MuJoCo simulator node (which also
publishes the camera images), the arm-control node (safety filter), the actor (policy) and
the per-episode recorder. World model and learner nodes can be appended by the caller
(`extra` argument or list concatenation).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# executable -> python module (for running without an installed console script)
MODULES: dict[str, str] = {
    "sim_node": "worldsample_control.nodes.sim_node",
    "arm_control_node": "worldsample_control.nodes.arm_control_node",
    "camera_node": "worldsample_control.nodes.camera_node",
    "actor_node": "worldsample_control.nodes.actor_node",
    "recorder_node": "worldsample_control.nodes.recorder_node",
}

ParamValue = bool | int | float | str | list[bool] | list[int] | list[float] | list[str]


@dataclass
class NodeSpec:
    package: str
    executable: str
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: list[tuple[str, str]] = field(default_factory=list)
    namespace: str = ""
    module: str | None = None  # python module with main(); defaults to MODULES[executable]
    # stop grace periods, the same under `ros2 launch` (sigterm_timeout / sigkill_timeout of the launch
    # action) and `worldsample loop`: SIGINT, then SIGTERM after the first, SIGKILL after the second.
    # launch's defaults; every node here stops within them (launch/test/test_ros2_launch.py)
    sigterm_timeout_s: float = 5.0
    sigkill_timeout_s: float = 10.0

    def python_module(self) -> str:
        mod = self.module or MODULES.get(self.executable)
        if mod is None:
            raise ValueError(f"node {self.name!r}: no python module known for executable {self.executable!r}; "
                             f"set NodeSpec.module")
        return mod

    def ros_args(self) -> list[str]:
        """``--ros-args -r __node:=name -p k:=v -r from:=to`` for this node."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.namespace if self.namespace.startswith('/') else '/' + self.namespace}"]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={format_param(value)}"]
        for src, dst in self.remappings:
            args += ["-r", f"{src}:={dst}"]
        return args


def format_param(value: Any) -> str:
    """A parameter value in the YAML syntax `--ros-args -p` expects."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # quote strings that YAML would read as something else (numbers, booleans, empty)
        low = value.lower()
        special = value == "" or low in ("true", "false", "yes", "no", "on", "off", "null", "~")
        try:
            float(value)
            special = True
        except ValueError:
            pass
        if special or any(c in value for c in ":#[]{},'\"") or value != value.strip():
            return "'" + value.replace("'", "''") + "'"
        return value
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("empty list parameters have no type in ROS 2; give at least one element")
        return "[" + ", ".join(format_param(v) for v in value) + "]"
    raise TypeError(f"parameter value {value!r} of type {type(value).__name__} is not a ROS parameter type")


def sim_arm_params() -> dict[str, Any]:
    """arm_control's IK for our MuJoCo arm: its end-effector point (the pinch between the Robotiq
    fingers, `SIM_TCP_OFFSET`) as the TCP, its home posture as the IK's rest posture. The real FR3 and
    Gazebo use the defaults (Franka Hand TCP, Franka's ready pose)."""
    from worldsample_control.core.sim.config import SIM_HOME_QPOS, SIM_TCP_OFFSET

    return {"joints.ik.tcp_xyz": [float(v) for v in SIM_TCP_OFFSET[0]],
            "joints.ik.tcp_quat": [float(v) for v in SIM_TCP_OFFSET[1]],
            "joints.ik.rest_posture": [float(v) for v in SIM_HOME_QPOS]}


def sim_graph(task: str, run_dir: str | Path, policy: str = "scripted", episodes: int = 1,
              seed: int = 0, max_steps: int = 0, image_size: int = 64,
              cameras: tuple[str, ...] = ("front", "wrist"), control_hz: float = 10.0,
              lockstep: bool = True, render: bool = True, source: str = "",
              extra: list[NodeSpec] | None = None, namespace: str = "",
              episodes_per_policy: int = 0, run_id: str = "", params_file: str | Path = "",
              params: dict[str, dict[str, Any]] | None = None) -> list[NodeSpec]:
    """Simulator + arm control + actor + recorder for ``episodes`` episodes of ``task``.

    ``policy``: "random", "scripted" (the task's expert, run inside the simulator node and sent
    as a suggestion) or a checkpoint path. ``source``: "demo" or "real" (default: demo for
    scripted, real otherwise). Bags go to ``run_dir/bags``. ``episodes_per_policy`` > 0: the
    actor holds between episodes after that many with one policy until a newer checkpoint.
    ``lockstep``: the one lock-step switch, the same for simulator, arm control and actor (false:
    each at ``control_hz``, `worldsample sim --realtime`).
    ``run_id``: carried by every episode message; arm control and recorder ignore other runs' (and
    the learner and world model of `learning_graph`, which get it from the loop arguments).
    Every other parameter comes from config/loop.yaml (with ``params_file`` laid over it), or from
    ``params`` when the caller has merged them already (`merged_node_params`).
    """
    run_dir = Path(run_dir)
    params = merged_node_params(params_file) if params is None else params
    src = source or ("demo" if policy == "scripted" else "real")
    cams = list(cameras)
    decided = {
        "sim": {"task": task, "seed": int(seed), "image_size": int(image_size), "cameras": cams,
                "control_hz": float(control_hz), "render": bool(render), "publish_expert": policy == "scripted",
                "max_episode_steps": int(max_steps)},
        "arm_control": {"control_hz": float(control_hz), "sim": True, **sim_arm_params()},
        "actor": {"task": task, "policy": policy, "episodes": int(episodes), "seed": int(seed),
                  "max_steps": int(max_steps), "cameras": cams, "control_hz": float(control_hz),
                  "source": src, "log_dir": str(run_dir / "actor"),
                  "episodes_per_policy": int(episodes_per_policy)},
        "recorder": {"out_dir": str(run_dir / "bags"), "cameras": cams},
    }
    _set_lockstep(decided, lockstep)
    _set_run_id(decided, run_id)
    specs = [NodeSpec("worldsample_control", f"{name}_node", name, node_parameters(params, name, values),
                      namespace=namespace) for name, values in decided.items()]
    return specs + list(extra or [])


RUN_ID_NODES = ("actor", "arm_control", "recorder")  # nodes that take the ``run_id`` parameter


def _set_lockstep(decided: dict[str, dict[str, Any]], lockstep: bool) -> None:
    """The one lock-step switch, the same value for every node of the graph that has it."""
    from worldsample_control.core.node_config import LOCKSTEP_NODES

    for name in LOCKSTEP_NODES:
        if name in decided:
            decided[name]["lockstep"] = bool(lockstep)


def _set_run_id(decided: dict[str, dict[str, Any]], run_id: str) -> None:
    if run_id:
        for name in RUN_ID_NODES:
            if name in decided:
                decided[name]["run_id"] = run_id


# --------------------------------------------------------------------------- the whole loop
@dataclass(frozen=True)
class LoopArguments:
    """The loop's arguments, documented once: each field is one ``ros2 launch`` argument of the three
    loop launch files (`LOOP_ARGUMENTS`, values arrive as strings) and, where `worldsample loop` has
    the same setting, its flag (`add_loop_flags`), with this default and this description."""

    task: str = "push"  # task name (sim: one of the MuJoCo tasks; real/gazebo: the label recorded in the bags)
    run_dir: str = "runs/loop"  # run directory: bags, checkpoints, world models, logs
    policy: str = "random"  # initial policy: 'random', 'scripted' (sim only) or a checkpoint path
    episodes: int = 0  # real episodes to run (0: until stopped)
    seed: int = 0  # seed of the first episode (sim)
    max_steps: int = 0  # episode length limit (0: the task's default)
    image_size: int = 64  # camera image size [px] (square)
    cameras: str = "front,wrist"  # comma-separated camera names
    camera_sources: str = "0,2"  # real: comma-separated OpenCV sources (device index, path, URL) per camera
    robot_ip: str = "172.16.0.2"  # real: the Franka's IP address (passed to franka_bringup)
    control_hz: float = 10.0  # control rate [Hz]
    namespace: str = ""  # ROS namespace of the robot-side nodes
    run_id: str = ""  # id of this run, carried by every episode message; nodes ignore other runs' ('' = none)
    # iteration pacing: after N episodes with one policy the actor waits for the next checkpoint (0: never waits)
    episodes_per_policy: int = 0
    # learner mode: rl-only, naive, selection, schedule, ppl. rl-only by default: on a 2-core CPU the pixel loop's
    # video model is barely past copy-last-frame and PPL with its data lowers success (docs/results.md, issue 23:
    # 0.18 against 0.62 over the last 50 of 450 episodes); the world model still trains and reports its fidelity.
    # mode ppl: the paper's method, for a rig whose world model beats copy-last-frame clearly
    mode: str = "rl-only"
    demos_dir: str = ""  # directory of demonstration bags for the world model's pre-training and the learner
    # parameter YAML laid over the package's config/loop.yaml key by key (every node's parameters, keyed by
    # node name; '' = loop.yaml alone)
    params_file: str = ""
    device: str = "auto"  # torch device of world model and learner: auto, cpu, cuda
    # real/gazebo: success classifier checkpoint ('' = human override only: publish std_msgs/Bool on
    # success/override, or run success_keys)
    success_classifier: str = ""
    # which part of the loop runs here: all (one machine), robot (robot PC) or learning (learning server);
    # robot and learning need the same run_id on both hosts (worldsample_bringup.parts)
    part: str = "all"


def _launch_default(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _loop_arguments() -> dict[str, tuple[str, str]]:
    from worldsample_common.core.params import field_descriptions

    helps = field_descriptions(LoopArguments)
    return {f.name: (_launch_default(f.default), helps.get(f.name, "")) for f in fields(LoopArguments)}


# Launch arguments of the loop launch files: name -> (default, help), from `LoopArguments`.
LOOP_ARGUMENTS: dict[str, tuple[str, str]] = _loop_arguments()


def add_loop_flags(parser: Any, names: tuple[str, ...], **overrides: dict[str, Any]) -> None:
    """``--name`` flags of `worldsample loop` for these `LoopArguments` fields: the field's type,
    default and description (``overrides[name]`` may add ``choices`` or change the default)."""
    helps = _loop_arguments()
    types = {f.name: type(f.default) for f in fields(LoopArguments)}
    for name in names:
        kw: dict[str, Any] = {"type": types[name], "default": getattr(LoopArguments, name), "help": helps[name][1]}
        kw.update(overrides.get(name, {}))
        parser.add_argument(f"--{name.replace('_', '-')}", **kw)


def config_path(name: str) -> Path:
    """A file of this package's ``config/`` (source tree, else the ament share directory)."""
    here = Path(__file__).resolve().parents[1] / "config" / name
    if here.exists():
        return here
    import os

    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        cand = Path(prefix) / "share" / "worldsample_bringup" / "config" / name
        if prefix and cand.exists():
            return cand
    raise FileNotFoundError(f"worldsample_bringup config file {name!r} not found next to {Path(__file__).parent} "
                            "or in any AMENT_PREFIX_PATH share directory")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load_node_params(path: str | Path) -> dict[str, dict[str, Any]]:
    """A ROS 2 parameter YAML (``node: {ros__parameters: {...}}``) -> {node: {dotted.name: value}}."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ValueError(f"parameter file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:  # one line: the problem and where
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"parameter file {path}: not valid YAML: {problem}{where}") from None
    if not isinstance(data, dict):
        raise ValueError(f"parameter file {path}: expected a mapping of node names, got {type(data).__name__}")
    out = {}
    for node, body in data.items():
        params = body.get("ros__parameters") if isinstance(body, dict) else None
        if not isinstance(params, dict):
            raise ValueError(f"parameter file {path}: node {node!r} has no 'ros__parameters' mapping")
        out[str(node).lstrip("/")] = _flatten(params)
    return out


def node_param_classes() -> dict[str, type]:
    """Node name in the parameter YAML -> the config class its parameters are declared from (and
    checked against), for every node of the loop. ``camera_*`` holds every ``camera_<name>`` node's."""
    from worldsample_common.core.transfer import PayloadLinkConfig
    from worldsample_control.core.node_config import ROBOT_NODE_CONFIGS
    from worldsample_learner.core.config import LearnerNodeConfig, SuccessNodeConfig
    from worldsample_worldmodel.core.node_config import WorldModelNodeConfig

    return {**ROBOT_NODE_CONFIGS, "success_detector": SuccessNodeConfig, "world_model": WorldModelNodeConfig,
            "learner": LearnerNodeConfig, "robot_link": PayloadLinkConfig, "learning_link": PayloadLinkConfig}


def node_param_configs() -> dict[str, Any]:
    """`node_param_classes` with their default configs (the trees, for listing and checking)."""
    return {name: cls() for name, cls in node_param_classes().items()}


def merged_node_params(params_file: str | Path = "") -> dict[str, dict[str, Any]]:
    """config/loop.yaml with ``params_file`` laid over it key by key (a key given there wins; every
    other key keeps loop.yaml's value). Unknown node names are refused."""
    params = load_node_params(config_path("loop.yaml"))
    if params_file:
        for node, values in load_node_params(params_file).items():
            params.setdefault(node, {}).update(values)
    known = node_param_classes()
    unknown = set(params) - set(known)
    if unknown:
        raise ValueError(f"parameter file {params_file or config_path('loop.yaml')}: unknown node(s) "
                         f"{sorted(unknown)}; expected {', '.join(known)}")
    return params


RESOLVED_PARAMS = "params.yaml"  # RUN/params.yaml: the parameter file a run started with, every node


def write_node_params(params: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """``{node: {dotted.name: value}}`` as a ROS 2 parameter YAML (nested mappings), written atomically.

    `worldsample loop` and the launch files write the merged loop.yaml + ``params_file`` of a run to
    ``RUN/params.yaml``; `worldsample loop --resume` reads it back, so a resumed run keeps the
    parameters it started with even if loop.yaml or the user's file changed since."""
    import yaml

    def nest(flat: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in sorted(flat.items()):
            *heads, last = key.split(".")
            d = out
            for h in heads:
                d = d.setdefault(h, {})
            d[last] = list(value) if isinstance(value, tuple) else value
        return out

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {node: {"ros__parameters": nest(values)} for node, values in params.items()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# the parameters this run started with (loop.yaml + the run's parameter file), by node\n"
                   + yaml.safe_dump(body, sort_keys=False, default_flow_style=False))
    tmp.replace(path)
    return path


def node_parameters(params: dict[str, dict[str, Any]], name: str, decided: dict[str, Any]) -> dict[str, Any]:
    """Node ``name``'s parameters: its section of the parameter YAML plus what the launch arguments
    decide (``decided``), checked against its config tree. A YAML key that the launch arguments
    decide is refused (it would be overridden silently): set the argument instead."""
    key = "camera_*" if name.startswith("camera_") else name
    given = params.get(key, {})
    clash = sorted(set(given) & set(decided))
    if clash:
        raise ValueError(f"{key}: parameter(s) {clash} are set from the launch arguments (the `worldsample "
                         f"loop` / `worldsample sim` flags), not from the parameter file; remove them there")
    from worldsample_common.core.params import validate_params

    return validate_params(name, node_param_classes()[key](), {**given, **decided})


def _split(value: str) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


def robot_graph(kind: str, task: str, run_dir: str | Path, policy: str = "random", episodes: int = 0,
                seed: int = 0, max_steps: int = 0, image_size: int = 64,
                cameras: tuple[str, ...] = ("front", "wrist"), camera_sources: tuple[str, ...] = (),
                control_hz: float = 10.0, namespace: str = "", episodes_per_policy: int = 0, run_id: str = "",
                success_classifier: str = "", params_file: str | Path = "",
                params: dict[str, dict[str, Any]] | None = None) -> list[NodeSpec]:
    """The robot side for ``kind`` in {"sim", "real", "gazebo"}.

    sim: `sim_graph` (lock-step MuJoCo node). real / gazebo: arm control at a fixed rate against
    franka_ros2 (started by the launch file), camera nodes (real only: Gazebo cameras are
    remapped onto ``cameras/<name>/image_raw`` by the user), the actor in real time without
    simulator rewards, and the recorder. Parameters not decided here come from config/loop.yaml
    (with ``params_file`` laid over it).
    """
    if kind == "sim":
        return sim_graph(task, run_dir, policy=policy, episodes=episodes, seed=seed, max_steps=max_steps,
                         image_size=image_size, cameras=cameras, control_hz=control_hz, namespace=namespace,
                         run_id=run_id, episodes_per_policy=episodes_per_policy, params_file=params_file,
                         params=params)
    if kind not in ("real", "gazebo"):
        raise ValueError(f"graph kind {kind!r}; expected 'sim', 'real' or 'gazebo'")
    params = merged_node_params(params_file) if params is None else params
    run_dir = Path(run_dir)
    cams = list(cameras)
    decided: dict[str, dict[str, Any]] = {}
    if kind == "real":
        if len(camera_sources) != len(cams):
            raise ValueError(f"{len(cams)} camera(s) {cams} but {len(camera_sources)} camera source(s) "
                             f"{list(camera_sources)}; give one source per camera")
        decided.update({f"camera_{c}": {"name": c, "source": str(src), "width": int(image_size),
                                        "height": int(image_size)}
                        for c, src in zip(cams, camera_sources, strict=True)})
    decided.update({
        "arm_control": {
            "control_hz": float(control_hz), "sim": False,
            "gripper_interface": "franka_action" if kind == "real" else "topic",
            # Gazebo has no franka_robot_state_broadcaster: the pose comes from joint_states (FR3 kinematics)
            "pose_from_joints": kind == "gazebo",
        },
        "actor": {
            "task": task, "policy": policy, "episodes": int(episodes), "seed": int(seed),
            "max_steps": int(max_steps) if max_steps else 200, "cameras": cams, "control_hz": float(control_hz),
            "use_sim_reward": True, "topic_sim_reward": "success/reward", "twist_topic": "",
            "source": "real", "log_dir": str(run_dir / "actor"), "episodes_per_policy": int(episodes_per_policy),
        },
        # records the reward the actor uses (the success detector's), not the absent simulator's
        "recorder": {"out_dir": str(run_dir / "bags"), "cameras": cams, "topic_sim_reward": "success/reward"},
        # reward and success without a simulator: the success classifier + the human override topic
        "success_detector": {"classifier": success_classifier, "cameras": cams},
    })
    _set_lockstep(decided, False)  # a real arm / Gazebo runs in real time
    _set_run_id(decided, run_id)
    specs = []
    for name, values in decided.items():
        package, executable, module = "worldsample_control", f"{name}_node", None
        if name.startswith("camera_"):
            executable = "camera_node"
        elif name == "success_detector":
            package, executable, module = "worldsample_learner", "success_node", "worldsample_learner.nodes.success_node"
        specs.append(NodeSpec(package, executable, name, node_parameters(params, name, values), namespace=namespace,
                              module=module))
    return specs


def learning_graph(kind: str, args: dict[str, str], params: dict[str, dict[str, Any]] | None = None) -> list[NodeSpec]:
    """World model + learner nodes of the loop.

    Their parameters come from the package's config/loop.yaml, overridden key by key by the
    parameter file ``params_file`` (if any), then the launch arguments set what they decide: run
    directories under ``run_dir``, task, cameras, image size, mode, demos, device. Every value is
    checked against the node's config tree (`node_param_configs`) before anything starts: an
    unknown key, a wrong type, NaN/inf or an out-of-range value is a ValueError naming the node
    and the key. In a mode that uses no synthetic data (``rl-only``; `ppl.uses_synthetic`) the world
    model still post-trains and reports fidelity, but generates no synthetic data.
    """
    from worldsample_learner.core.ppl import PPL_MODES, uses_synthetic

    if args["mode"] not in PPL_MODES:
        raise ValueError(f"mode {args['mode']!r}; expected one of {PPL_MODES}")
    params = merged_node_params(args["params_file"]) if params is None else params
    run_dir = Path(args["run_dir"])
    cams = _split(args["cameras"])
    size = int(args["image_size"])
    wm = node_parameters(params, "world_model", {
        "run_dir": str(run_dir / "world_model"), "demos_dir": args["demos_dir"], "real_dir": str(run_dir / "bags"),
        "synthetic_dir": str(run_dir / "synthetic"), "device": args["device"], "model.image_size": size,
        "model.cameras": cams, "model.seed": int(args["seed"]), "run_id": args["run_id"],
        "policy": args["policy"]})  # the actor's first policy: scheduled batches are for it until a checkpoint
    if not uses_synthetic(args["mode"]):
        wm["generate_period_s"] = 0.0
    learner = node_parameters(params, "learner", {
        "task": args["task"], "mode": args["mode"], "cameras": cams, "image_size": size,
        "out_dir": str(run_dir / "learner"), "demos_dir": args["demos_dir"], "device": args["device"],
        "real_dir": str(run_dir / "bags"), "seed": int(args["seed"]), "run_id": args["run_id"]})
    specs = [
        NodeSpec("worldsample_worldmodel", "world_model_node", "world_model", wm,
                 module="worldsample_worldmodel.nodes.world_model_node"),
        NodeSpec("worldsample_learner", "learner_node", "learner", learner,
                 module="worldsample_learner.nodes.learner_node"),
    ]
    for s in specs:
        s.namespace = args["namespace"]
    return specs


def loop_graph(kind: str, **args: str) -> list[NodeSpec]:
    """The whole closed loop for ``kind`` from launch-argument strings (see `LOOP_ARGUMENTS`)."""
    a = {name: str(args.get(name, default)) for name, (default, _) in LOOP_ARGUMENTS.items()}
    unknown = set(args) - set(LOOP_ARGUMENTS)
    if unknown:
        raise ValueError(f"unknown loop argument(s) {sorted(unknown)}; known: {sorted(LOOP_ARGUMENTS)}")
    params = merged_node_params(a["params_file"])  # read once for every node
    robot = robot_graph(
        kind, a["task"], a["run_dir"], policy=a["policy"], episodes=int(a["episodes"]), seed=int(a["seed"]),
        max_steps=int(a["max_steps"]), image_size=int(a["image_size"]), cameras=tuple(_split(a["cameras"])),
        camera_sources=tuple(_split(a["camera_sources"])), control_hz=float(a["control_hz"]),
        namespace=a["namespace"], episodes_per_policy=int(a["episodes_per_policy"]),
        success_classifier=a["success_classifier"], run_id=a["run_id"], params=params,
    )
    from .parts import select_part

    return select_part(robot + learning_graph(kind, a, params), a, params)
