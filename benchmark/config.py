"""Typed configs: dataclass defaults <- per-(algorithm, task) YAML <- budget <- ``--set`` overrides.

Every algorithm config subclasses :class:`benchmark.rl.configs.OfflineConfig` (or ``OnlineConfig``), the
trainer configs of the shared RL package; this module is the harness machinery that fills them. A class may
add ``BUDGETS = {"smoke": {...}, "short": {...}}``; budgets are merged along the class hierarchy, so a
subclass only names the sizes it adds (e.g. rollout batch). Budgets change sizes only, never the
method. ``paper`` is always the YAML/default values untouched.

YAML files are flat mappings ``field: value``; keys starting with ``_`` (``_source``, ``_note``) are
documentation and are kept out of the config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from benchmark.rl.configs import ConfigError

BUDGET_NAMES = ("smoke", "short", "paper")


def budget_overrides(config_cls: type, budget: str) -> dict[str, Any]:
    """Merge ``BUDGETS[budget]`` along the MRO (base first, subclass wins)."""
    if budget not in BUDGET_NAMES:
        raise ConfigError(f"unknown budget {budget!r}; expected one of {', '.join(BUDGET_NAMES)}")
    merged: dict[str, Any] = {}
    for klass in reversed(config_cls.__mro__):
        merged.update(vars(klass).get("BUDGETS", {}).get(budget, {}))
    return merged


def field_types(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in fields(config_cls)}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Coerce a YAML/CLI value to a dataclass field type, or raise a ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str | int | float):
            value = [value]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
            if f.is_integer():
                return int(f)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def apply_values(
    config_cls: type, base: dict[str, Any], values: dict[str, Any], where: str
) -> dict[str, Any]:
    """Return ``base`` updated with type-checked ``values`` (unknown fields are an error)."""
    types_ = field_types(config_cls)
    out = dict(base)
    for key, value in values.items():
        if key.startswith("_"):
            continue
        if key not in types_:
            raise ConfigError(
                f"{where}: unknown field {key!r} for {config_cls.__name__}; "
                f"valid fields: {', '.join(sorted(types_))}"
            )
        out[key] = _coerce(value, types_[key], f"{where}: field {key!r}")
    return out


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of field: value, got {type(data).__name__}")
    return data


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b=[1,2]"]`` -> ``{"a": 1, "b": [1, 2]}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _repo_relative(path: Path) -> str:
    """A config file inside the repository as a repository path (records carry no machine paths)."""
    root = Path(__file__).resolve().parent.parent
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:  # a plugin's config outside the repository
        return str(path)


def find_config_file(config_dir: Path | None, config_keys: tuple[str, ...]) -> Path | None:
    if config_dir is None:
        return None
    for key in config_keys:
        p = Path(config_dir) / f"{key}.yaml"
        if p.exists():
            return p
    return None


def _declared_default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def resolve_config(
    config_cls: type,
    config_dir: Path | None,
    config_keys: tuple[str, ...],
    budget: str,
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    override_sources: dict[str, str] | None = None,
    inherited: dict[str, Any] | None = None,
    inherited_from: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Build the run's config. Returns ``(config, provenance)``; provenance names the YAML file used,
    the budget values applied and the CLI overrides, so the record says where each value came from.
    ``inherited`` values (from another config, named by ``inherited_from``; e.g. an analysis borrowing m
    from ``admpo-off``) sit between the class defaults and the YAML file and are named in the provenance.
    A config without a ``seed`` field (analysis sizes) does not take ``seed``.
    Every numeric value is range-checked (:func:`check_ranges`); an error names the layer it came from
    (``override_sources`` maps an override key to where it was written, e.g. a suite file's entry; ``--set``
    otherwise)."""
    # the declared defaults, before __post_init__ (which fills device-dependent fields left at None, e.g. a
    # rollout chunk size, from the values resolved here)
    values = {f.name: _declared_default(f) for f in fields(config_cls)}
    sources = dict.fromkeys(values, f"the {config_cls.__name__} default")
    if inherited:
        values = apply_values(config_cls, values, inherited, inherited_from)
        sources.update(dict.fromkeys(inherited, inherited_from))
    path = find_config_file(config_dir, config_keys)
    yaml_values: dict[str, Any] = {}
    if path is not None:
        yaml_values = load_yaml(path)
        values = apply_values(config_cls, values, yaml_values, str(path))
        sources.update(dict.fromkeys((k for k in yaml_values if not k.startswith("_")), str(path)))
    budget_values = budget_overrides(config_cls, budget)
    values = apply_values(config_cls, values, budget_values, f"budget {budget!r}")
    sources.update(dict.fromkeys(budget_values, f"budget {budget!r}"))
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed!r}")
    if "seed" in values:
        values["seed"] = seed
        sources["seed"] = "--seed"
    cli = overrides or {}
    for key, value in cli.items():
        where = (override_sources or {}).get(key, "--set")
        values = apply_values(config_cls, values, {key: value}, where)
        sources[key] = where
    check_ranges(config_cls, values, sources)
    check_choices(config_cls, values, sources)
    cfg = config_cls(**values)
    provenance = {
        "config_file": _repo_relative(path) if path else None,
        "config_source": yaml_values.get("_source"),
        "budget_values": budget_values,
        "overrides": cli,
    }
    if inherited:
        provenance["inherited"] = {"from": inherited_from, "values": dict(inherited)}
    return cfg, provenance


@dataclass(frozen=True)
class Range:
    """An allowed interval for a numeric config field (``None`` bound = unbounded on that side)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, x: float) -> bool:
        if not math.isfinite(x):
            return False
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return self.high is None or not (x > self.high or (self.high_open and x == self.high))

    def describe(self, integer: bool) -> str:
        kind = "an integer" if integer else "a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        return kind


AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
UNIT_INTERVAL = Range(0, 1)
ANY_FINITE = Range()

# Allowed ranges by field name, first match wins; a config class may pin a field with
# ``RANGES: ClassVar[dict[str, Range]]``. tests/test_config_ranges.py checks that every numeric field of every
# registered config matches a rule, so a new field cannot slip through unchecked.
RANGE_RULES: tuple[tuple[str, Range], ...] = (
    (r"^(seed|checkpoint_every)$", NON_NEGATIVE),
    (r"(^|_)lr$", POSITIVE),
    (r"^gamma$", UNIT_INTERVAL),
    (r"^tau$", Range(0, 1, low_open=True)),
    (r"_fraction$", Range(0, 1, high_open=True)),
    (r"(ratio|dropout)$", UNIT_INTERVAL),
    (r"^(temperature|min_return_var|alpha_max)$", POSITIVE),
    # "0 (or None) = no cap / no pre-training / off"
    (r"(max_epochs|max_steps|max_time_s|fixed_k|bc_epochs|bc_steps|pe_steps|start_learning)$",
     NON_NEGATIVE),
    # sizes and counts
    (r"^(final_k|eval_episodes|epochs|steps_per_epoch|env_steps|updates_per_step)$", AT_LEAST_ONE),
    (r"(batch_size|chunk_size|buffer_size|_freq|_interval|hidden|hidden_dim|layers|members|elites)$",
     AT_LEAST_ONE),
    (r"^num_", AT_LEAST_ONE),
    (r"^(n_starts|max_points|train_transitions)$", AT_LEAST_ONE),  # analysis sizes (None: all)
    (r"(horizon|rollout_length|max_arm_step|max_step|max_holdout|patience|retain_epochs|retain_steps"
     r"|since_update|train_steps)$", AT_LEAST_ONE),
    (r"^rollout_schedule$", NON_NEGATIVE),  # (first epoch, last epoch, min length, max length)
    # weights, coefficients, noise scales, thresholds
    (r"(_coef|_coeff|_weight|weight_decays|^alpha|^eta|threshold|noise|noise_clip)$", NON_NEGATIVE),
    # genuinely signed settings: only finiteness is required
    (r"^(target_entropy|target_q_min|q_clip|max_logvar_init|min_logvar_init)$", ANY_FINITE),
)


def field_range(config_cls: type, name: str) -> Range | None:
    """The allowed range of a numeric field (class ``RANGES`` first, then :data:`RANGE_RULES`)."""
    for klass in config_cls.__mro__:
        pinned = vars(klass).get("RANGES", {})
        if name in pinned:
            return pinned[name]
    for pattern, allowed in RANGE_RULES:
        if re.search(pattern, name):
            return allowed
    return None


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _numbers(v)]
    return []


def check_ranges(config_cls: type, values: dict[str, Any], sources: dict[str, str]) -> None:
    """Refuse out-of-range numbers before any work: NaN/inf anywhere, and values outside a field's range
    (:func:`field_range`; fields without a rule only need to be finite). The message names the field, the
    layer that set it (default, YAML file, budget, ``--set`` or suite file) and the allowed range."""
    for name, value in values.items():
        numbers = _numbers(value)
        if not numbers:
            continue
        allowed = field_range(config_cls, name) or ANY_FINITE
        bad = next((x for x in numbers if not allowed.contains(x)), None)
        if bad is not None:
            integer = all(isinstance(x, int) for x in numbers)
            scalar = len(numbers) == 1 and not isinstance(value, list | tuple)
            shown = value if scalar else f"{value!r} ({bad!r})"
            raise ConfigError(
                f"{sources.get(name, 'config')}: field {name!r} = {shown} is out of range; "
                f"allowed: {allowed.describe(integer)}"
            )


def field_choices(config_cls: type, name: str) -> tuple[str, ...] | None:
    """The allowed values of a string field: the nearest ``CHOICES: ClassVar[dict[str, tuple]]`` along the
    class's MRO that names it (e.g. ``compile``: "off" on the floor, every mode where the updates compile)."""
    for klass in config_cls.__mro__:
        choices = vars(klass).get("CHOICES", {})
        if name in choices:
            return tuple(choices[name])
    return None


def check_choices(config_cls: type, values: dict[str, Any], sources: dict[str, str]) -> None:
    """Refuse a value outside its field's :func:`field_choices`, naming the field, the layer that set it and
    the allowed values."""
    for name, value in values.items():
        allowed = field_choices(config_cls, name)
        if allowed is not None and value not in allowed:
            raise ConfigError(
                f"{sources.get(name, 'config')}: field {name!r} = {value!r} is not allowed for "
                f"{config_cls.__name__}; allowed: {', '.join(allowed)}"
            )


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


def config_hash(payload: dict[str, Any]) -> str:
    """Stable sha256 (16 hex chars) of a JSON-able payload."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
