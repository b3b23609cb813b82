"""Node parameters from config dataclasses, and their validation (ROS-free).

One dataclass tree is the parameter list of a node: every field is a parameter, a nested
dataclass field ``ppl: PPLConfig`` contributes ``ppl.threshold_max`` and so on (dotted names, as
in a ROS 2 parameter YAML's nested mappings). The trailing ``# comment`` of a field (or the
comment lines above it) is its description. A root class may list dotted names that are not
parameters in ``PARAM_SKIP`` (a class variable), e.g. a field another parameter decides, and old
names in ``PARAM_RENAMED`` (old -> new), which `validate_params` refuses naming the new one.

The same tree is used twice:

- by the node (`worldsample_common.nodes.support.declare_config`): declare every parameter with
  its default and description, and build the filled config;
- before anything starts (`worldsample loop`, the launch files through ``graph.py``):
  `validate_params` refuses unknown keys, wrong types, NaN/inf and, through the config's own
  ``validate()``, out-of-range values, each with the parameter's name.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import io
import math
import re
import tokenize
from dataclasses import dataclass
from functools import cache
from typing import Any

SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class ParamSpec:
    name: str  # dotted parameter name
    default: Any  # bool | int | float | str | tuple of one of those
    description: str

    @property
    def kind(self) -> type:
        """The scalar type of the value (of its elements for an array)."""
        return type(self.default[0]) if isinstance(self.default, tuple) else type(self.default)

    @property
    def is_array(self) -> bool:
        return isinstance(self.default, tuple)


@cache
def field_descriptions(cls: type) -> dict[str, str]:
    """Field name -> its comment in the class source (trailing, else the comment lines just above)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        comments: dict[int, str] = {}
        try:
            for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                if tok.type == tokenize.COMMENT:
                    comments[tok.start[0]] = tok.string.lstrip("#").strip()
        except (tokenize.TokenError, IndentationError):
            continue
        names = {f.name for f in dataclasses.fields(klass)}
        for i, line in enumerate(lines, start=1):
            m = re.match(r"\s+(\w+)\s*:", line)
            if not m or m.group(1) not in names:
                continue
            text = comments.get(i)
            if text is None:  # comment lines directly above the field
                above, j = [], i - 1
                while j in comments and lines[j - 1].lstrip().startswith("#"):
                    if " " in comments[j]:  # a one-word comment is a section heading, not a description
                        above.insert(0, comments[j])
                    j -= 1
                text = " ".join(above) if above else None
            if text:
                out[m.group(1)] = text
    return out


def config_params(config: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> dict[str, ParamSpec]:
    """Every parameter of a config dataclass instance (nested dataclasses recursively), by dotted name.

    Fields whose default is ``None``, an empty tuple/list or a dict have no ROS parameter type and
    are not parameters; neither are the names in ``skip`` and in the root class's ``PARAM_SKIP``.
    """
    skip = tuple(skip) + tuple(getattr(type(config), "PARAM_SKIP", ()))
    return _params(config, prefix, "", skip)


def _params(config: Any, prefix: str, path: str, skip: tuple[str, ...]) -> dict[str, ParamSpec]:
    out: dict[str, ParamSpec] = {}
    descriptions = field_descriptions(type(config))
    for f in dataclasses.fields(config):
        rel = f"{path}{f.name}"
        if rel in skip:
            continue
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_params(value, prefix, rel + ".", skip))
            continue
        if isinstance(value, list):
            value = tuple(value)
        if value is None or isinstance(value, dict) or (isinstance(value, tuple) and not value):
            continue
        if not (isinstance(value, SCALARS) or (isinstance(value, tuple) and isinstance(value[0], SCALARS))):
            continue
        desc = descriptions.get(f.name, "")
        name = prefix + rel
        out[name] = ParamSpec(name, value, f"{type(config).__name__}.{f.name}" + (f": {desc}" if desc else ""))
    return out


def require_positive(owner: str, **values: Any) -> None:
    """Each value a finite number > 0, else ValueError ``"<owner>.<name> must be a positive finite number"``."""
    for name, v in values.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ValueError(f"{owner}.{name} must be a positive finite number, got {v!r}")


def require_non_negative(owner: str, **values: Any) -> None:
    """Each value a finite number >= 0, else ValueError naming ``<owner>.<name>``."""
    for name, v in values.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{owner}.{name} must be a finite number >= 0, got {v!r}")


def require_one_of(owner: str, name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name} must be one of {allowed}, got {value!r}")


def topic_params(config: Any) -> dict[str, str]:
    """A node config's ``topic_<key>`` fields as {key: topic name} (how nodes name what they speak)."""
    return {f.name[len("topic_"):]: getattr(config, f.name) for f in dataclasses.fields(config)
            if f.name.startswith("topic_")}


def _check_value(node: str, spec: ParamSpec, value: Any) -> Any:
    """``value`` checked against ``spec``'s type (ints widen to floats), finite; returns it normalised."""
    where = f"{node}: parameter {spec.name!r}"

    def scalar(v: Any) -> Any:
        kind = spec.kind
        if kind is bool:
            if not isinstance(v, bool):
                raise ValueError(f"{where} must be true or false, got {v!r}")
            return v
        if kind is int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{where} must be an integer, got {v!r}")
            return v
        if kind is float:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"{where} must be a number, got {v!r}")
            if not math.isfinite(v):
                raise ValueError(f"{where} must be a finite number, got {v!r}")
            return float(v)
        if not isinstance(v, str):
            raise ValueError(f"{where} must be a string, got {v!r} ({type(v).__name__}); quote it in YAML")
        return v

    if spec.is_array:
        if not isinstance(value, list | tuple) or not value:
            raise ValueError(f"{where} must be a non-empty list of {spec.kind.__name__}, got {value!r}")
        return [scalar(v) for v in value]
    if isinstance(value, list | tuple):
        raise ValueError(f"{where} must be a single {spec.kind.__name__}, got the list {value!r}")
    return scalar(value)


def build_config(config: Any, values: dict[str, Any], prefix: str = "") -> Any:
    """A copy of ``config`` with the dotted ``values`` applied (nested dataclasses replaced recursively)."""
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        rel = key[len(prefix):] if prefix and key.startswith(prefix) else key
        head, _, rest = rel.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for f in dataclasses.fields(config):
        if f.name in direct:
            default = getattr(config, f.name)
            v = direct[f.name]
            direct[f.name] = tuple(v) if isinstance(default, tuple) and isinstance(v, list) else v
    for head, sub in nested.items():
        direct[head] = build_config(getattr(config, head), sub)
    return dataclasses.replace(config, **direct)


def validate_params(node: str, config: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Check a node's parameter values against its config tree; return them normalised (ints -> floats
    where the parameter is a float, arrays as lists).

    Raises ValueError naming the node and the parameter for an unknown key, a wrong type, NaN/inf,
    or a value the config's own ``validate()`` refuses (out of range).
    """
    specs = config_params(config)
    renamed = getattr(type(config), "PARAM_RENAMED", {})  # old name -> the parameter that replaced it
    out: dict[str, Any] = {}
    for key, value in values.items():
        spec = specs.get(key)
        if spec is None and key in renamed:
            raise ValueError(f"{node}: parameter {key!r} was replaced by {renamed[key]!r}; set that instead")
        if spec is None:
            close = difflib.get_close_matches(key, list(specs), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(specs))}"
            raise ValueError(f"{node}: unknown parameter {key!r}; {hint}")
        out[key] = _check_value(node, spec, value)
    cfg = build_config(config, out)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as exc:
            raise ValueError(f"{node}: {_name_the_parameter(str(exc), cfg, specs)}") from None
    return out


def _name_the_parameter(message: str, config: Any, specs: dict[str, ParamSpec]) -> str:
    """Prefix a config's validation message ("PPLConfig.threshold_max must ...") with the parameter name."""
    m = re.match(r"(\w+)(?:\.|: )(\w+)", message)  # "Owner.field ..." or "Owner: field ..."
    if m:
        owner, fname = m.groups()
        for name, spec in specs.items():
            if spec.description.split(":")[0] == f"{owner}.{fname}":
                return f"parameter {name!r}: {message}"
        same = [name for name in specs if name.rsplit(".", 1)[-1] == fname]
        if len(same) == 1:  # a field handed on to a component config (batch_size -> AgentConfig.batch_size)
            return f"parameter {same[0]!r}: {message}"
    return message
