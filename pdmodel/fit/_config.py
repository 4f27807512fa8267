"""Fit configuration: a frozen, typed :class:`FitConfig` read from TOML and validated.

``pdmodel fit [CONFIG]`` reads a TOML file with the sections ``[data]``, ``[model]``, ``[map]``,
``[nuts]``, ``[output]`` and the top-level keys ``seed`` and ``version`` (see
``fits/default.toml`` for every key with its meaning and unit). :func:`load_config` reports every
problem at once, one a line, each naming the file and the dotted key::

    fits/x.toml: nuts.draws must be an integer >= 1, got -5
    fits/x.toml: unknown key 'nuts.draw' (did you mean 'nuts.draws'?)

Relative paths resolve against the config file's folder ("bundled" and "none" are kept).
:func:`apply_overrides` applies command-line ``key=value`` overrides with the same validation;
:func:`dump_config` writes a config back to TOML so that :func:`load_config` gives it again.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from ..errors import ConfigError, RegimenError
from ..irae import IraeModel
from ..pk import available_models
from ..regimen import Regimen
from ..vocab import TUMOURS
from ._parameters import FitSpec, Prior

CONFIG_VERSION = 1
"""Version of the configuration format understood by this package."""

DEFAULT_CONFIG_PATH = Path("fits/default.toml")
"""Configuration used by ``pdmodel fit`` without an argument (relative to the working folder)."""

DEFAULT_REGIMENS: tuple[str, ...] = (
    "nivolumab 240 mg q2w",
    "nivolumab 480 mg q4w",
    "pembrolizumab 200 mg q3w",
    "pembrolizumab 400 mg q6w",
    "ipilimumab 3 mg/kg q3w x4",
    "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 480 mg q4w",
    "atezolizumab 1200 mg q3w",
    "durvalumab 1500 mg q4w",
)
"""Regimens tabulated in the incidence-curve output by default."""

PRIOR_DISTS: dict[str, tuple[str, ...]] = {
    "lognormal": ("median", "sd"),
    "logitnormal": ("median", "sd"),
    "normal": ("mean", "sd"),
    "halfnormal": ("sd",),
}
"""Prior families allowed in ``[model.priors]`` and the numbers each one needs."""

DATA_USE: tuple[str, ...] = ("fit_default", "all")
"""Row filters of ``data.use``: rows flagged ``fit_default`` or all usable rows."""

NUTS_METHODS: tuple[str, ...] = ("emulator", "exact", "laplace")
"""``nuts.method``: NUTS on an emulator of the likelihood, NUTS on the exact ODE likelihood,
or the Laplace approximation only (no NUTS; the default: its draws are solved exactly and
PSIS-checked against the exact posterior, docs/model.md §5.4)."""

BUNDLED = "bundled"
NONE = "none"




class FrozenDict(dict):
    """A read-only, hashable ``dict`` (used for table-valued settings of the frozen config)."""

    def _readonly(self, *args, **kwargs):
        raise TypeError("configuration tables are read-only; use dataclasses.replace or "
                        "apply_overrides")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly
    __ior__ = _readonly

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


Number = float | tuple[float, ...]


@dataclass(frozen=True)
class PriorSpec:
    """Prior of one :class:`~pdmodel.IraeModel` field (scalar, or one value per element).

    Attributes
    ----------
    dist : str
        One of :data:`PRIOR_DISTS`.
    median : float or tuple of float, optional
        ``lognormal`` (> 0) and ``logitnormal`` (in (0, 1)).
    mean : float or tuple of float, optional
        ``normal``.
    sd : float or tuple of float
        SD on the distribution's own scale (log, logit or natural), > 0.
    """

    dist: str
    median: Number | None = None
    mean: Number | None = None
    sd: Number | None = None


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: which incidence/timing data to fit.

    Attributes
    ----------
    incidence : str
        ``"bundled"`` or an absolute path (relative paths resolve against the config file).
    timing : str
        ``"bundled"``, ``"none"`` or a path.
    use : str
        Row filter, one of :data:`DATA_USE`.
    exclude_rows : tuple of str
        ``row_id`` values left out of the fit.
    """

    incidence: str = BUNDLED
    timing: str = BUNDLED
    use: str = "fit_default"
    exclude_rows: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: solver resolution, virtual population and parameters.

    Attributes
    ----------
    steps_per_day, refine : int
        Fixed-grid solver resolution (steps per day; extra refinement level).
    days : int
        Simulated follow-up, days.
    patients : int
        Virtual patients per trial arm.
    tumour : str
        Tumour type for the organ-susceptibility factors (``pdmodel.TUMOURS``).
    pk_models : FrozenDict[str, str]
        Agent -> PK model id; agents not listed use ``pdmodel.DEFAULT_MODELS``.
    fixed : tuple of str
        IraeModel fields kept at their defaults (not fitted).
    priors : FrozenDict[str, PriorSpec]
        Prior overrides by IraeModel field name.
    """

    steps_per_day: int = 1
    refine: int = 1
    days: int = 730
    patients: int = 32
    tumour: str = "melanoma"
    pk_models: FrozenDict = field(default_factory=FrozenDict)
    fixed: tuple[str, ...] = ()
    priors: FrozenDict = field(default_factory=FrozenDict)


@dataclass(frozen=True)
class MapConfig:
    """``[map]``: multi-start MAP optimisation (Adam, then L-BFGS).

    Attributes
    ----------
    starts : int
        Number of starting points.
    adam_steps : int
        Adam iterations per start.
    adam_lr : float
        Adam learning rate.
    lbfgs_steps : int
        L-BFGS iterations after Adam.
    """

    starts: int = 2
    adam_steps: int = 150
    adam_lr: float = 0.05
    lbfgs_steps: int = 40


@dataclass(frozen=True)
class NutsConfig:
    """``[nuts]``: the NUTS sampler.

    Attributes
    ----------
    chains, warmup, draws : int
        Chains; warm-up and kept draws per chain.
    target_accept : float
        Target acceptance probability of step-size adaptation, in (0, 1).
    max_tree_depth : int
        Maximum tree depth (1..15).
    method : str
        ``"emulator"`` or ``"exact"`` likelihood.
    design_points : int
        Design points for the emulator (>= 8).
    """

    chains: int = 4
    warmup: int = 500
    draws: int = 1000
    target_accept: float = 0.85
    max_tree_depth: int = 8
    method: str = "laplace"
    design_points: int = 512


@dataclass(frozen=True)
class OutputConfig:
    """``[output]``: run folder and tabulated incidence curves.

    Attributes
    ----------
    folder : str
        Run folder (relative paths resolve against the config file's folder).
    curves_regimens : tuple of str
        Regimens (``pdmodel.Regimen.parse`` text) to tabulate.
    weeks : int
        Length of the tabulated curves, weeks.
    interval : float
        Width of the credible band (0.9: 5/50/95 % quantiles).
    """

    folder: str = "fits/runs/default"
    curves_regimens: tuple[str, ...] = DEFAULT_REGIMENS
    weeks: int = 52
    interval: float = 0.9


@dataclass(frozen=True)
class FitConfig:
    """A complete, validated fit configuration (immutable; use :func:`apply_overrides`).

    Attributes
    ----------
    version : int
        Configuration format version (:data:`CONFIG_VERSION`).
    seed : int
        Random seed (>= 0) of the whole fit.
    data, model, map, nuts, output
        The sections.
    """

    version: int = CONFIG_VERSION
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    map: MapConfig = field(default_factory=MapConfig)
    nuts: NutsConfig = field(default_factory=NutsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "map": MapConfig,
                             "nuts": NutsConfig, "output": OutputConfig}
TOP_LEVEL: tuple[str, ...] = ("version", "seed")

# keys whose value is a path ("bundled"/"none" aside), resolved against the config's folder
_PATH_KEYS = ("data.incidence", "data.timing", "output.folder")
# keys whose command-line override text is taken literally when it is not a TOML string
_STRING_KEYS = _PATH_KEYS + ("data.use", "model.tumour", "nuts.method")
# keys left out of config_hash/config_diff: where a run is written, not what it computes
_LOCATION_KEYS = ("output.folder",)


# --------------------------------------------------------------------------- validation


class _Bad(Exception):
    """One problem with one value (message names the key)."""


@dataclass
class _Ctx:
    base: Path | None  # folder relative paths resolve against; None: keep them relative


def _all_keys() -> list[str]:
    keys = list(TOP_LEVEL) + list(SECTIONS)
    for name, cls in SECTIONS.items():
        keys += [f"{name}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def _did_you_mean(key: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = [c for c in choices if c.rsplit(".", 1)[-1] == leaf and c != key]
    close = same_leaf or difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown(key: str, choices: Iterable[str] | None = None, what: str = "key") -> str:
    return f"unknown {what} '{key}'" + _did_you_mean(key, _all_keys() if choices is None
                                                      else choices)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _int(lo: int | None = None, hi: int | None = None) -> Callable:
    if lo is not None and hi is not None:
        desc = f"an integer in {lo}..{hi}"
    elif lo is not None:
        desc = f"an integer >= {lo}"
    else:
        desc = "an integer"

    def check(v, key, ctx):
        if not _is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _Bad(f"{key} must be {desc}, got {v!r}")
        return v
    return check


def _float(lo: float | None = None, hi: float | None = None) -> Callable:
    """Finite number with open bounds ``lo < v < hi``."""
    if lo is not None and hi is not None:
        desc = f"a number strictly between {lo:g} and {hi:g}"
    elif lo is not None:
        desc = f"a number > {lo:g}"
    else:
        desc = "a finite number"

    def check(v, key, ctx):
        if not _is_num(v) or (lo is not None and v <= lo) or (hi is not None and v >= hi):
            raise _Bad(f"{key} must be {desc}, got {v!r}")
        return float(v)
    return check


def _choice(choices: Iterable[str]) -> Callable:
    choices = tuple(choices)

    def check(v, key, ctx):
        if not isinstance(v, str) or v not in choices:
            hint = ""
            if isinstance(v, str):
                close = difflib.get_close_matches(v.lower(), choices, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise _Bad(f"{key} must be one of {', '.join(map(repr, choices))}, got {v!r}"
                       + hint)
        return v
    return check


def _str_list(*, nonempty: bool = False) -> Callable:
    def check(v, key, ctx):
        if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
            raise _Bad(f"{key} must be a list of strings, got {v!r}")
        if nonempty and not v:
            raise _Bad(f"{key} must list at least one entry")
        dup = sorted({x for x in v if list(v).count(x) > 1})
        if dup:
            raise _Bad(f"{key} lists {', '.join(map(repr, dup))} more than once")
        return tuple(v)
    return check


def _resolve(p: str, base: Path | None) -> str:
    p = os.path.expanduser(p)
    if base is None:
        return p
    return os.path.abspath(os.path.join(base, p))


def _path(*, specials: tuple[str, ...], must_exist: bool) -> Callable:
    desc = " or ".join([repr(s) for s in specials] + ["a path"])

    def check(v, key, ctx):
        if not isinstance(v, str) or not v.strip():
            raise _Bad(f"{key} must be {desc}, got {v!r}")
        if v in specials:
            return v
        p = _resolve(v, ctx.base)
        if must_exist and not os.path.isfile(p):
            raise _Bad(f"{key}: file not found: {p}")
        return p
    return check


def _regimens(v, key, ctx):
    out = _str_list(nonempty=True)(v, key, ctx)
    bad = []
    for i, text in enumerate(out):
        try:
            Regimen.parse(text)
        except RegimenError as e:
            bad.append(f"{key}[{i}] {text!r}: {e}")
    if bad:
        raise _Bad("\n".join(bad))
    return out


@cache
def _field_sizes() -> dict[str, int]:
    """Number of elements of each IraeModel field (from the defaults)."""
    m = IraeModel()
    return {f.name: int(np.size(getattr(m, f.name))) for f in dataclasses.fields(IraeModel)}


def _fixed(v, key, ctx):
    out = _str_list()(v, key, ctx)
    sizes = _field_sizes()
    bad = [f"{key}: {_unknown(x, sizes, 'IraeModel field')}" for x in out if x not in sizes]
    if bad:
        raise _Bad("\n".join(bad))
    return out


def _tumour(v, key, ctx):
    return _choice(TUMOURS)(v, key, ctx)


def _pk_models(v, key, ctx):
    if not isinstance(v, Mapping):
        raise _Bad(f"{key} must be a table of agent = \"model id\", got {v!r}")
    models = available_models()
    bad, out = [], {}
    for agent, model in v.items():
        k = f"{key}.{agent}"
        if agent not in models:
            bad.append(f"{key}: " + _unknown(agent, models, "agent"))
        elif not isinstance(model, str) or model not in models[agent]:
            bad.append(f"{k} must be one of {', '.join(map(repr, models[agent]))}, "
                       f"got {model!r}")
        else:
            out[agent] = model
    if bad:
        raise _Bad("\n".join(bad))
    return FrozenDict(out)


def _prior_number(v, key, n, *, lo=None, hi=None, desc="a finite number"):
    """Scalar, or a list of ``n`` values (one per element of the field)."""
    def ok(x):
        return (_is_num(x) and (lo is None or x > lo) and (hi is None or x < hi))

    if _is_num(v):
        if not ok(v):
            raise _Bad(f"{key} must be {desc}, got {v!r}")
        return float(v)
    if isinstance(v, list | tuple) and n > 1:
        if len(v) != n or not all(ok(x) for x in v):
            raise _Bad(f"{key} must be {desc} or a list of {n} such numbers, got {v!r}")
        return tuple(float(x) for x in v)
    extra = f" or a list of {n} such numbers" if n > 1 else ""
    raise _Bad(f"{key} must be {desc}{extra}, got {v!r}")


def _priors(v, key, ctx):
    if not isinstance(v, Mapping):
        raise _Bad(f"{key} must be a table of field = {{dist = ..., ...}}, got {v!r}")
    sizes = _field_sizes()
    bad, out = [], {}
    for name, spec in v.items():
        k = f"{key}.{name}"
        if name not in sizes:
            bad.append(f"{key}: " + _unknown(name, sizes, "IraeModel field"))
            continue
        if not isinstance(spec, Mapping):
            bad.append(f"{k} must be a table like {{dist = \"lognormal\", median = 1.0, "
                       f"sd = 0.5}}, got {spec!r}")
            continue
        dist = spec.get("dist")
        if dist not in PRIOR_DISTS:
            if dist is None:
                bad.append(f"{k}.dist is missing (one of {', '.join(map(repr, PRIOR_DISTS))})")
            else:
                try:
                    _choice(PRIOR_DISTS)(dist, f"{k}.dist", ctx)
                except _Bad as e:
                    bad.append(str(e))
            continue
        need = PRIOR_DISTS[dist]
        values: dict[str, Any] = {}
        for p, x in spec.items():
            if p == "dist":
                continue
            if p not in need:
                bad.append(f"{k}.{p} is not used by dist {dist!r} (it needs "
                           f"{', '.join(need)})")
                continue
            if p == "sd":
                kw = dict(lo=0.0, desc="a number > 0")
            elif p == "median" and dist == "lognormal":
                kw = dict(lo=0.0, desc="a number > 0")
            elif p == "median":
                kw = dict(lo=0.0, hi=1.0, desc="a number strictly between 0 and 1")
            else:
                kw = {}
            try:
                values[p] = _prior_number(x, f"{k}.{p}", sizes[name], **kw)
            except _Bad as e:
                bad.append(str(e))
        missing = [p for p in need if p not in spec]
        for p in missing:
            bad.append(f"{k}.{p} is missing (dist {dist!r} needs {', '.join(need)})")
        if not missing and len(values) == len(need):
            out[name] = PriorSpec(dist=dist, **values)
    if bad:
        raise _Bad("\n".join(bad))
    return FrozenDict(out)


_CHECKS: dict[str, Callable] = {
    "version": _int(),
    "seed": _int(0),
    "data.incidence": _path(specials=(BUNDLED,), must_exist=True),
    "data.timing": _path(specials=(BUNDLED, NONE), must_exist=True),
    "data.use": _choice(DATA_USE),
    "data.exclude_rows": _str_list(),
    "model.steps_per_day": _int(1, 16),
    "model.refine": _int(0, 6),
    "model.days": _int(1),
    "model.patients": _int(1),
    "model.tumour": _tumour,
    "model.pk_models": _pk_models,
    "model.fixed": _fixed,
    "model.priors": _priors,
    "map.starts": _int(1),
    "map.adam_steps": _int(0),
    "map.adam_lr": _float(0.0),
    "map.lbfgs_steps": _int(0),
    "nuts.chains": _int(1),
    "nuts.warmup": _int(0),
    "nuts.draws": _int(1),
    "nuts.target_accept": _float(0.0, 1.0),
    "nuts.max_tree_depth": _int(1, 15),
    "nuts.method": _choice(NUTS_METHODS),
    "nuts.design_points": _int(8),
    "output.folder": _path(specials=(), must_exist=False),
    "output.curves_regimens": _regimens,
    "output.weeks": _int(1),
    "output.interval": _float(0.0, 1.0),
}


def _check(key: str, value: Any, ctx: _Ctx, problems: list[str]) -> Any:
    try:
        return _CHECKS[key](value, key, ctx)
    except _Bad as e:
        problems.extend(str(e).split("\n"))
        return None


def parse_config(data: Mapping[str, Any], *, source: str | os.PathLike = "<config>",
                 base: str | os.PathLike | None = None) -> FitConfig:
    """Validate a parsed TOML mapping and build a :class:`FitConfig`.

    Parameters
    ----------
    data : mapping
        As returned by ``tomllib.load``; missing keys take their defaults.
    source : str
        Name used in error messages (the file).
    base : path, optional
        Folder relative paths resolve against; None keeps them as given.

    Raises
    ------
    ConfigError
        Listing every unknown key, wrong type and out-of-range value.
    """
    ctx = _Ctx(None if base is None else Path(os.path.abspath(base)))
    problems: list[str] = []
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    if not isinstance(data, Mapping):
        raise ConfigError(source, [f"a configuration must be a table, got {data!r}"])
    for key, value in data.items():
        if key in TOP_LEVEL:
            v = _check(key, value, ctx, problems)
            if v is not None:
                top[key] = v
        elif key in SECTIONS:
            if not isinstance(value, Mapping):
                problems.append(f"{key} must be a table ([{key}] section), got {value!r}")
                continue
            fields = {f.name for f in dataclasses.fields(SECTIONS[key])}
            for k, v in value.items():
                dotted = f"{key}.{k}"
                if k not in fields:
                    problems.append(_unknown(dotted))
                    continue
                v = _check(dotted, v, ctx, problems)
                if v is not None:
                    sections[key][k] = v
        elif isinstance(value, Mapping):
            close = difflib.get_close_matches(key, list(SECTIONS), n=1, cutoff=0.6)
            problems.append(f"unknown section [{key}]"
                            + (f" (did you mean [{close[0]}]?)" if close else "")
                            + f"; sections are {', '.join(f'[{s}]' for s in SECTIONS)}")
        else:
            problems.append(_unknown(key))
    if top.get("version", CONFIG_VERSION) != CONFIG_VERSION:
        problems.append(f"version {top['version']} is not supported (this pdmodel reads "
                        f"version {CONFIG_VERSION})")
    if problems:
        raise ConfigError(source, problems)
    cfg = FitConfig(**top, **{name: SECTIONS[name](**kw) for name, kw in sections.items()})
    problems += _cross_checks(cfg)
    if problems:
        raise ConfigError(source, problems)
    return cfg


def _cross_checks(cfg: FitConfig) -> list[str]:
    out = []
    for name in cfg.model.priors:
        if name in cfg.model.fixed:
            out.append(f"model.priors.{name}: field {name!r} is also listed in model.fixed "
                       "(a fixed field has no prior)")
    if cfg.output.weeks * 7 > cfg.model.days:
        out.append(f"output.weeks = {cfg.output.weeks} exceeds the simulated follow-up "
                   f"(model.days = {cfg.model.days}, i.e. {cfg.model.days // 7} weeks)")
    return out


_TOML_LINE = re.compile(r"at line (\d+)")
_TOML_TABLE = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_.\-\s\"']+?)\s*=")


def _toml_error(text: str, e: Exception) -> str:
    """Message for a TOML syntax error, naming the line, its key and section if found."""
    m = _TOML_LINE.search(str(e))
    lines = text.splitlines()
    if not m or not 1 <= int(m.group(1)) <= len(lines):
        return f"invalid TOML: {e}"
    n = int(m.group(1))
    line = lines[n - 1]
    table = next((t.group(1) for t in map(_TOML_TABLE.match, reversed(lines[:n - 1])) if t),
                 None)
    k = _TOML_KEY.match(line)
    where = ""
    if k and not _TOML_TABLE.match(line):
        key = k.group(1).strip().replace('"', "").replace("'", "")
        where = f" (key '{table + '.' if table else ''}{key}')"
    elif table:
        where = f" (in [{table}])"
    return f"invalid TOML at line {n}{where}: {e}; the line reads {line.strip()!r}"


def load_config(path: str | os.PathLike) -> FitConfig:
    """Read and validate a fit configuration (TOML).

    Parameters
    ----------
    path : path
        The TOML file; relative paths inside resolve against its folder.

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML, unknown keys, wrong types or out-of-range values; the
        message names the file and every bad key, one problem a line.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(path, ["configuration file not found"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, [f"cannot read configuration: {e}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, [_toml_error(text, e)]) from None
    return parse_config(data, source=path, base=path.parent)


# --------------------------------------------------------------------------- dump / compare


def _plain(v: Any) -> Any:
    if isinstance(v, PriorSpec):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)
                if getattr(v, f.name) is not None}
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def config_to_dict(config: FitConfig) -> dict[str, Any]:
    """Plain nested dict (lists, dicts, scalars) of ``config``, as in the TOML file."""
    out: dict[str, Any] = {k: getattr(config, k) for k in TOP_LEVEL}
    for name in SECTIONS:
        sec = getattr(config, name)
        out[name] = {f.name: _plain(getattr(sec, f.name)) for f in dataclasses.fields(sec)}
    return out


def dump_config(config: FitConfig, header: str | None = None) -> str:
    """TOML text of ``config``; :func:`load_config` of it gives ``config`` again.

    Parameters
    ----------
    config : FitConfig
    header : str, optional
        Comment written at the top (each line prefixed with ``# ``).
    """
    text = tomli_w.dumps(config_to_dict(config))
    if header:
        text = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines()) + "\n" + text
    return text


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_hash(config: FitConfig) -> str:
    """SHA-256 (hex) of everything in ``config`` that affects results (not ``output.folder``)."""
    flat = {k: v for k, v in _flatten(config_to_dict(config)).items()
            if k not in _LOCATION_KEYS}
    text = json.dumps(flat, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def config_diff(a: FitConfig, b: FitConfig) -> list[str]:
    """Dotted keys whose values differ between two configs (``output.folder`` ignored)."""
    fa, fb = _flatten(config_to_dict(a)), _flatten(config_to_dict(b))
    return sorted(k for k in set(fa) | set(fb)
                  if k not in _LOCATION_KEYS and fa.get(k, None) != fb.get(k, None))


# --------------------------------------------------------------------------- overrides


def _override_value(key: str, text: str) -> Any:
    """``key=value`` value: a TOML value (10, 0.9, true, "x", [..]) or else the bare text."""
    text = text.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    if key in _STRING_KEYS and not isinstance(value, str):
        return text
    return value


def _set(d: dict, key: str, value: Any) -> str | None:
    parts = key.split(".")
    for i, p in enumerate(parts[:-1]):
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            return f"cannot set {key!r}: {'.'.join(parts[:i + 1])!r} is not a table"
        d = nxt
    d[parts[-1]] = value
    return None


def apply_overrides(config: FitConfig,
                    items: Iterable[str] | Mapping[str, Any] | None = None, /,
                    **overrides: Any) -> FitConfig:
    """A copy of ``config`` with some keys replaced, validated like a config file.

    Parameters
    ----------
    config : FitConfig
    items : list of "key=value" strings, or mapping of dotted key -> value
        E.g. ``["nuts.draws=10", "map.starts=1", "output.folder=/tmp/run"]``; values are TOML
        values (``10``, ``0.9``, ``"x"``, ``[1, 2]``) or, failing that, bare text.
    **overrides
        Keyword form: ``nuts__draws=10`` (``__`` for the dot), ``seed=3``, or a whole section
        ``nuts={"draws": 10}``.

    Raises
    ------
    ConfigError
        Source ``"command-line override"``; names each bad key (unknown ones with a
        did-you-mean).
    """
    source = "command-line override"
    pairs: list[tuple[str, Any]] = []
    problems: list[str] = []
    if isinstance(items, Mapping):
        pairs += [(str(k), v) for k, v in items.items()]
    elif items is not None:
        if isinstance(items, str):
            items = [items]
        for item in items:
            key, eq, text = str(item).partition("=")
            key = key.strip()
            if not eq or not key:
                problems.append(f"{item!r} must look like key=value (e.g. nuts.draws=10)")
                continue
            pairs.append((key, _override_value(key, text)))
    for k, v in overrides.items():
        k = k.replace("__", ".")
        if k in SECTIONS and isinstance(v, Mapping):
            pairs += [(f"{k}.{kk}", vv) for kk, vv in _flatten(v).items()]
        else:
            pairs.append((k, v))
    data = config_to_dict(config)
    for key, value in pairs:
        if key in _PATH_KEYS and isinstance(value, str) and value not in (BUNDLED, NONE):
            value = _resolve(value, Path.cwd())
        err = _set(data, key, value)
        if err:
            problems.append(err)
    if problems:
        raise ConfigError(source, problems)
    return parse_config(data, source=source, base=None)


def fit_spec(config: FitConfig) -> FitSpec:
    """Default fit with the config's fixed fields and prior overrides applied."""
    spec = FitSpec.default(fixed=tuple(config.model.fixed))
    overrides = dict(config.model.priors)
    if not overrides:
        return spec
    entries = []
    for e in spec.entries:
        ps = overrides.get(e.field)
        if ps is None:
            entries.append(e)
            continue
        k = 0 if e.index is None else e.index[-1]

        def pick(v, k=k):
            return v[k] if isinstance(v, tuple | list) else v

        if ps.dist == "halfnormal":
            raise ValueError(f"model.priors.{e.field}: halfnormal is not available for this "
                             "field; use lognormal, logitnormal or normal")
        centre = pick(ps.mean) if ps.dist == "normal" else pick(ps.median)
        entries.append(replace(e, prior=Prior(ps.dist, float(centre), float(pick(ps.sd)))))
    return FitSpec(entries=tuple(entries), base=spec.base)
