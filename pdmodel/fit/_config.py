"""Fit configuration: a frozen, typed :class:`FitConfig` read from TOML and validated.

``pdmodel fit [CONFIG]`` reads a TOML file with the sections ``[data]``, ``[model]``, ``[map]``,
``[nuts]``, ``[output]`` and the top-level keys ``seed`` and ``version`` (see
``fits/default.toml`` for every key with its meaning and unit). Each TOML table is declared as a
pydantic model (``_DataTable``, ``_ModelTable``, ...: types, ranges, choices, no unknown keys,
no coercion of ``"10"`` or ``true`` to numbers); :func:`load_config` turns pydantic's report
into one :class:`~pdmodel.errors.ConfigError` listing every problem at once, one a line, each
naming the file and the dotted key, the allowed range or values and a did-you-mean::

    fits/x.toml: nuts.draws must be an integer >= 1, got -5
    fits/x.toml: unknown key 'nuts.draw' (did you mean 'nuts.draws'?)

Values that are legal but unusual (``model.patients`` > 100,000, ``model.days`` > 3650, ...;
each limit is declared with its key as ``_Usual``) give a :class:`ConfigWarning` naming the key.

Relative paths resolve against the config file's folder ("bundled" and "none" are kept).
:func:`apply_overrides` applies command-line ``key=value`` overrides with the same validation;
:func:`dump_config` writes a config back to TOML so that :func:`load_config` gives it again.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import tomllib
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import numpy as np
import tomli_w
from annotated_types import Ge, Gt, Le, Lt
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    create_model,
)
from pydantic_core import PydanticCustomError

from ..errors import ConfigError, ConfigWarning, RegimenError
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


ARM_COURSES = ("managed", "natural")
"""How the training arms' incidence rows are simulated (``model.arms``): ``managed`` (grades
above the trigger grade under the default management policy,
:func:`pdmodel.fit._management.managed_attenuation`) or ``natural`` (the natural course)."""


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: which incidence/timing data to fit.

    Attributes
    ----------
    incidence : str
        ``"bundled"`` or an absolute path (relative paths resolve against the config file).
    timing : str
        ``"bundled"``, ``"none"`` or a path.
    subgroups : str
        ``"bundled"`` (the subgroup incidences of the management table,
        :func:`pdmodel.fit.subgroup_targets`) or ``"none"``.
    management : str
        ``"bundled"`` (the steroid, resolution and infliximab fractions of the management
        table, :func:`pdmodel.fit.management_targets`) or ``"none"``.
    use : str
        Row filter, one of :data:`DATA_USE`.
    exclude_rows : tuple of str
        ``row_id`` values left out of the fit.
    """

    incidence: str = BUNDLED
    timing: str = BUNDLED
    subgroups: str = BUNDLED
    management: str = BUNDLED
    use: str = "fit_default"
    exclude_rows: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: solver resolution, virtual population and parameters.

    Attributes
    ----------
    steps_per_day, refine : int
        Fixed-grid solver resolution (steps per day, 1..16; extra refinement level, 0..6).
    days : int
        Simulated follow-up, days (>= 1; warned about above 3650, ten years).
    patients : int
        Virtual patients per trial arm (>= 1; warned about above 100,000).
    tumour : str
        Tumour type for the organ-susceptibility factors (``pdmodel.TUMOURS``).
    pk_models : FrozenDict[str, str]
        Agent -> PK model id; agents not listed use ``pdmodel.DEFAULT_MODELS``.
    fixed : tuple of str
        IraeModel fields kept at their defaults (not fitted).
    priors : FrozenDict[str, PriorSpec]
        Prior overrides by IraeModel field name.
    arms : str
        How the training arms are simulated (:data:`ARM_COURSES`):
        ``"managed"`` (grade ≥ 3 under the default management policy, as the trials managed
        their patients) or ``"natural"`` (natural course).
    """

    steps_per_day: int = 1
    refine: int = 1
    days: int = 730
    patients: int = 32
    tumour: str = "melanoma"
    pk_models: FrozenDict = field(default_factory=FrozenDict)
    fixed: tuple[str, ...] = ()
    priors: FrozenDict = field(default_factory=FrozenDict)
    arms: str = "managed"


@dataclass(frozen=True)
class MapConfig:
    """``[map]``: multi-start MAP optimisation (Adam, then L-BFGS).

    Attributes
    ----------
    starts : int
        Number of starting points (>= 1; warned about above 256).
    adam_steps : int
        Adam iterations per start (>= 0; warned about above 100,000).
    adam_lr : float
        Adam learning rate (> 0, finite; warned about outside 1e-5..1).
    lbfgs_steps : int
        L-BFGS iterations after Adam (>= 0; warned about above 10,000).
    """

    starts: int = 2
    adam_steps: int = 150
    adam_lr: float = 0.05
    lbfgs_steps: int = 100


@dataclass(frozen=True)
class NutsConfig:
    """``[nuts]``: the NUTS sampler.

    Attributes
    ----------
    chains, warmup, draws : int
        Chains (>= 1); warm-up (>= 0) and kept draws (>= 1) per chain (each warned about
        above 1024 chains, 100,000 iterations).
    target_accept : float
        Target acceptance probability of step-size adaptation, in (0, 1) (warned about
        outside 0.5..0.99).
    max_tree_depth : int
        Maximum tree depth (1..15).
    method : str
        One of :data:`NUTS_METHODS`.
    design_points : int
        Design points for the emulator (>= 8; warned about above 100,000).
    refine_rounds : int
        Times the emulator may be retrained on exact solves at its posterior draws when the
        PSIS check finds it unreliable (0..5; each round is another NUTS run and exact pass).
    """

    chains: int = 4
    warmup: int = 500
    draws: int = 1000
    target_accept: float = 0.85
    max_tree_depth: int = 8
    method: str = "laplace"
    design_points: int = 512
    refine_rounds: int = 1


@dataclass(frozen=True)
class OutputConfig:
    """``[output]``: run folder and tabulated incidence curves.

    Attributes
    ----------
    folder : str
        Run folder (relative paths resolve against the config file's folder).
    curves_regimens : tuple of str
        Regimens (``pdmodel.Regimen.parse`` text) to tabulate, at least one.
    weeks : int
        Length of the tabulated curves, weeks (>= 1, at most ``model.days / 7``).
    interval : float
        Width of the credible band, in (0, 1) (0.9: 5/50/95 % quantiles; warned about below
        0.5, e.g. 0.05 written for 0.95).
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
        Random seed (0 <= seed < 2**63) of the whole fit.
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


# --------------------------------------------------------------------------- schema: values


@dataclass(frozen=True)
class _Usual:
    """Usual range of a number (metadata of a schema field): outside it, a ConfigWarning."""

    lo: float | None = None
    hi: float | None = None
    why: str = ""


Text = Annotated[str, Strict()]
Integer = Annotated[int, Strict()]  # a TOML integer: not a bool, not 2.0
Count = Annotated[int, Strict(), Ge(1)]
Iterations = Annotated[int, Strict(), Ge(0)]
Finite = Annotated[float, Strict(), AllowInfNan(False)]  # a TOML integer or float
Positive = Annotated[float, Strict(), AllowInfNan(False), Gt(0)]
Fraction = Annotated[float, Strict(), AllowInfNan(False), Gt(0), Lt(1)]

_IRAE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(IraeModel))


def _problem(text: str, subkey: str | None = None) -> PydanticCustomError:
    """A validation error whose text follows the dotted key (``subkey`` is appended to it)."""
    return PydanticCustomError("pdmodel_config", "{problem}",
                               {"problem": text, "subkey": subkey})


def _resolve(p: str, base: Path | None) -> str:
    p = os.path.expanduser(p)
    if base is None:
        return p
    return os.path.abspath(os.path.join(base, p))


def _path(*specials: str, must_exist: bool) -> AfterValidator:
    """A path resolved against ``context["base"]`` (kept as given without one), or a special."""
    named = " or ".join([repr(s) for s in specials] + ["a path"])

    def check(value: str, info: ValidationInfo) -> str:
        if value in specials:
            return value
        if not value.strip():
            raise _problem(f"must be {named}, got {value!r}")
        path = _resolve(value, (info.context or {}).get("base"))
        if must_exist and not os.path.isfile(path):
            raise _problem(f"must name an existing file; not found: {path}")
        return path
    return AfterValidator(check)


def _nonempty(values: tuple) -> tuple:
    if not values:
        raise _problem("must list at least one entry, got []")
    return values


def _distinct(values: tuple) -> tuple:
    dup = sorted({x for x in values if values.count(x) > 1})
    if dup:
        raise _problem(f"lists {', '.join(map(repr, dup))} more than once")
    return values


def _regimen(text: str) -> str:
    try:
        Regimen.parse(text)
    except RegimenError as e:
        raise _problem(f"= {text!r} is not a regimen pdmodel can read: {e}") from None
    return text


def _irae_field(name: str) -> str:
    if name not in _IRAE_FIELDS:
        raise _problem(f"= {name!r} is not an IraeModel field" + _did_you_mean(name, _IRAE_FIELDS)
                       + "; pdmodel.PARAMETER_INFO lists them")
    return name


def _supported(version: int) -> int:
    if version != CONFIG_VERSION:
        raise _problem(f"must be {CONFIG_VERSION} (the configuration format this pdmodel "
                       f"reads), got {version}")
    return version


@cache
def _field_sizes() -> dict[str, int]:
    """Number of elements of each IraeModel field (from the defaults)."""
    m = IraeModel()
    return {name: int(np.size(getattr(m, name))) for name in _IRAE_FIELDS}


def _sized(name: str) -> AfterValidator:
    """Each number of a prior of field ``name``: a scalar, or one value per element."""
    def check(prior: _Prior) -> _Prior:
        n = _field_sizes()[name]
        for key, value in prior:
            if isinstance(value, tuple) and (n == 1 or len(value) != n):
                scalar = _expected(get_args(type(prior).model_fields[key].annotation)[0])
                raise _problem(f"must be {scalar}" + (f" or a list of {n} such numbers" if n > 1
                                                      else "") + f", got {list(value)!r}", key)
        return prior
    return AfterValidator(check)


# --------------------------------------------------------------------------- schema: tables


class _Table(BaseModel):
    """A TOML table: unknown keys, wrong types and out-of-range values are errors.

    ``form`` shows the table's shape in messages (None: a ``[section]``); ``member`` names
    what its keys are.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    form: ClassVar[str | None] = None
    member: ClassVar[str] = "key"


class _DataTable(_Table):
    """``[data]`` (:class:`DataConfig`)."""

    incidence: Annotated[Text, _path(BUNDLED, must_exist=True)] = DataConfig.incidence
    timing: Annotated[Text, _path(BUNDLED, NONE, must_exist=True)] = DataConfig.timing
    subgroups: Literal[BUNDLED, NONE] = DataConfig.subgroups  # type: ignore[valid-type]
    management: Literal[BUNDLED, NONE] = DataConfig.management  # type: ignore[valid-type]
    use: Literal[DATA_USE] = DataConfig.use  # type: ignore[valid-type]
    exclude_rows: Annotated[tuple[Text, ...], AfterValidator(_distinct)] = ()


class _PkModelsTable(_Table):
    """``[model.pk_models]``: agent = "model id" (one field per agent, built below)."""

    form = 'agent = "model id"'
    member = "agent"


_PkModels = create_model(  # type: ignore[call-overload]
    "_PkModels", __base__=_PkModelsTable,
    **{agent: (Literal[ids], None) for agent, ids in available_models().items()})


class _Prior(_Table):
    """One prior of ``[model.priors]``; the subclasses are the families (tag ``dist``)."""

    form = '{dist = "lognormal", median = 1.0, sd = 0.5}'
    member = "number"


Spread = Annotated[Positive, _Usual(hi=10.0, why="an SD above 10 on the log or logit scale "
                                           "spans many orders of magnitude")]


class _LogNormal(_Prior):
    """Log-normal: median > 0, SD of the log."""

    dist: Literal["lognormal"]
    median: Positive | tuple[Positive, ...]
    sd: Spread | tuple[Spread, ...]


class _LogitNormal(_Prior):
    """Logit-normal: median in (0, 1), SD of the logit."""

    dist: Literal["logitnormal"]
    median: Fraction | tuple[Fraction, ...]
    sd: Spread | tuple[Spread, ...]


class _Normal(_Prior):
    """Normal: mean and SD on the natural scale."""

    dist: Literal["normal"]
    mean: Finite | tuple[Finite, ...]
    sd: Positive | tuple[Positive, ...]


class _HalfNormal(_Prior):
    """Half-normal: SD on the natural scale."""

    dist: Literal["halfnormal"]
    sd: Positive | tuple[Positive, ...]


_PriorFamily = _LogNormal | _LogitNormal | _Normal | _HalfNormal
_PRIORS: tuple[type[_Prior], ...] = get_args(_PriorFamily)
PRIOR_DISTS: dict[str, tuple[str, ...]] = {
    get_args(c.model_fields["dist"].annotation)[0]: tuple(k for k in c.model_fields if k != "dist")
    for c in _PRIORS}
"""Prior families allowed in ``[model.priors]`` and the numbers each one needs."""


class _PriorsTable(_Table):
    """``[model.priors]``: field = {dist = ..., ...} (one field per IraeModel field)."""

    form = "field = {dist = ..., ...}"
    member = "IraeModel field"


_Priors = create_model(  # type: ignore[call-overload]
    "_Priors", __base__=_PriorsTable,
    **{name: (Annotated[_PriorFamily, Field(discriminator="dist"), _sized(name)], None)
       for name in _IRAE_FIELDS})


class _ModelTable(_Table):
    """``[model]`` (:class:`ModelConfig`)."""

    steps_per_day: Annotated[Count, Le(16)] = ModelConfig.steps_per_day
    refine: Annotated[Iterations, Le(6)] = ModelConfig.refine
    days: Annotated[Count, _Usual(hi=3650, why="over ten years of follow-up; time and "
                                  "memory grow with the days simulated")] = ModelConfig.days
    patients: Annotated[Count, _Usual(hi=100_000, why="time and memory grow with the patients "
                                      "of every arm")] = ModelConfig.patients
    tumour: Literal[TUMOURS] = ModelConfig.tumour  # type: ignore[valid-type]
    pk_models: _PkModels = _PkModels()  # type: ignore[valid-type]
    fixed: Annotated[tuple[Annotated[Text, AfterValidator(_irae_field)], ...],
                     AfterValidator(_distinct)] = ()
    priors: _Priors = _Priors()  # type: ignore[valid-type]
    arms: Literal[ARM_COURSES] = ModelConfig.arms  # type: ignore[valid-type]


class _MapTable(_Table):
    """``[map]`` (:class:`MapConfig`)."""

    starts: Annotated[Count, _Usual(hi=256, why="each start is a whole optimisation")] = (
        MapConfig.starts)
    adam_steps: Annotated[Iterations, _Usual(hi=100_000, why="hours of optimisation")] = (
        MapConfig.adam_steps)
    adam_lr: Annotated[Positive, _Usual(lo=1e-5, hi=1.0, why="Adam on the unconstrained "
                                        "scale diverges above 1 and stalls below 1e-5")] = (
        MapConfig.adam_lr)
    lbfgs_steps: Annotated[Iterations, _Usual(hi=10_000, why="L-BFGS converges in tens to "
                                              "hundreds of steps")] = MapConfig.lbfgs_steps


class _NutsTable(_Table):
    """``[nuts]`` (:class:`NutsConfig`)."""

    chains: Annotated[Count, _Usual(hi=1024, why="each chain is a whole sampler")] = (
        NutsConfig.chains)
    warmup: Annotated[Iterations, _Usual(hi=100_000, why="hours of sampling")] = (
        NutsConfig.warmup)
    draws: Annotated[Count, _Usual(hi=100_000, why="hours of sampling; at most 1000 draws "
                                   "are stored")] = NutsConfig.draws
    target_accept: Annotated[Fraction, _Usual(lo=0.5, hi=0.99, why="low targets give "
                                              "divergences, high ones tiny steps")] = (
        NutsConfig.target_accept)
    max_tree_depth: Annotated[Count, Le(15)] = NutsConfig.max_tree_depth
    method: Literal[NUTS_METHODS] = NutsConfig.method  # type: ignore[valid-type]
    design_points: Annotated[Integer, Ge(8), _Usual(hi=100_000, why="the emulator is "
                                                    "trained on exact solves at each point")] = (
        NutsConfig.design_points)
    refine_rounds: Annotated[Iterations, Le(5)] = NutsConfig.refine_rounds


class _OutputTable(_Table):
    """``[output]`` (:class:`OutputConfig`)."""

    folder: Annotated[Text, _path(must_exist=False)] = OutputConfig.folder
    curves_regimens: Annotated[tuple[Annotated[Text, AfterValidator(_regimen)], ...],
                               AfterValidator(_nonempty), AfterValidator(_distinct)] = (
        OutputConfig.curves_regimens)
    weeks: Annotated[Count, _Usual(hi=520, why="over ten years")] = OutputConfig.weeks
    interval: Annotated[Fraction, _Usual(lo=0.5, why="0.05 is often written for 0.95")] = (
        OutputConfig.interval)


class _ConfigFile(_Table):
    """A whole fit configuration file (:class:`FitConfig`)."""

    version: Annotated[Integer, AfterValidator(_supported)] = CONFIG_VERSION
    seed: Annotated[Iterations, Le(2**63 - 1)] = 0
    data: _DataTable = _DataTable()
    model: _ModelTable = _ModelTable()
    map: _MapTable = _MapTable()
    nuts: _NutsTable = _NutsTable()
    output: _OutputTable = _OutputTable()


def _to_config(file: _ConfigFile) -> FitConfig:
    """The :class:`FitConfig` of a validated file."""
    m = file.model
    priors = {name: PriorSpec(**prior)
              for name, prior in m.priors.model_dump(exclude_unset=True).items()}
    model = ModelConfig(**{**dict(m), "pk_models": FrozenDict(
        m.pk_models.model_dump(exclude_unset=True, exclude_none=True)),
        "priors": FrozenDict(priors)})
    return FitConfig(version=file.version, seed=file.seed, data=DataConfig(**dict(file.data)),
                     model=model, map=MapConfig(**dict(file.map)),
                     nuts=NutsConfig(**dict(file.nuts)), output=OutputConfig(**dict(file.output)))


# --------------------------------------------------------------------------- schema: messages


def _unwrap(tp: Any) -> tuple[Any, tuple]:
    """``Annotated[T, *meta]`` -> (T, meta), flattening nested Annotated."""
    meta: tuple = ()
    while get_origin(tp) is Annotated:
        tp, *more = get_args(tp)
        meta = (*more, *meta)
    return tp, meta


def _tables(tp: Any) -> dict[str | None, type[BaseModel]]:
    """Tables an annotation holds: {None: table}, or {dist: table} for the prior families."""
    tp, _ = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {None: tp}
    if get_origin(tp) in (Union, UnionType):
        members = [_unwrap(a)[0] for a in get_args(tp) if a is not NoneType]
        if members and all(isinstance(a, type) and issubclass(a, _Prior) for a in members):
            return {get_args(a.model_fields["dist"].annotation)[0]: a for a in members}
    return {}


def _annotation(table: type[BaseModel], name: str) -> Any:
    info = table.model_fields[name]
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def _bound(meta: tuple, kind: type) -> Any:
    return next((getattr(m, kind.__name__.lower()) for m in meta if isinstance(m, kind)), None)


def _expected(tp: Any) -> str:
    """What a value of annotation ``tp`` must be, in words ("an integer in 1..15")."""
    tp, meta = _unwrap(tp)
    origin = get_origin(tp)
    if origin in (Union, UnionType):
        first, *rest = [a for a in get_args(tp) if a is not NoneType]
        if rest and get_origin(_unwrap(rest[0])[0]) is tuple:
            return f"{_expected(first)} or a list of such numbers"
        return " or ".join(_expected(a) for a in (first, *rest))
    if origin is tuple:
        item = get_args(tp)[0]
        return "a list of strings" if _unwrap(item)[0] is str else f"a list, each {_expected(item)}"
    if origin is Literal:
        return "one of " + ", ".join(map(repr, get_args(tp)))
    ge, gt, le, lt = (_bound(meta, k) for k in (Ge, Gt, Le, Lt))
    if tp is int:
        if ge is not None and le is not None:
            return f"an integer in {ge}..{le}"
        return "an integer" + (f" >= {ge}" if ge is not None else "")
    if tp is float:
        if gt is not None and lt is not None:
            return f"a number strictly between {gt:g} and {lt:g}"
        return f"a number > {gt:g}" if gt is not None else "a finite number"
    if tp is str:
        return "a string"
    return "a table" if _tables(tp) else str(tp)


@dataclass
class _Where:
    """Where a pydantic error location points in the schema."""

    key: str  # dotted key, list items as key[i]
    table: type[BaseModel] | None  # table holding the last key
    tp: Any  # annotation at the location (None for an unknown key)
    dist: str | None  # prior family passed on the way


def _where(loc: tuple) -> _Where:
    parts: list[str] = []
    table, tp, dist = None, _ConfigFile, None
    for part in loc:
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
            tp = get_args(_unwrap(tp)[0])[0]
            continue
        tables = _tables(tp)
        if None in tables:
            table = tables[None]
            parts.append(part)
            tp = _annotation(table, part) if part in table.model_fields else None
        elif part in tables:
            dist, tp = part, tables[part]
        else:
            break  # a member label of a number-or-list union: the field's own key says it
    return _Where(".".join(parts), table, tp, dist)


def _all_keys() -> list[str]:
    keys = list(_ConfigFile.model_fields)
    for name in SECTIONS:
        keys += [f"{name}.{k}" for k in _tables(_annotation(_ConfigFile, name))[None].model_fields]
    return keys


def _did_you_mean(key: str, choices: Iterable[str], *, wrap: str = "'{}'") -> str:
    """`` (did you mean 'x'?)`` for the closest choice (same last part first), or ""."""
    choices = [str(c) for c in choices]
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = [c for c in choices if c.rsplit(".", 1)[-1] == leaf and c != key]
    close = same_leaf or difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return f" (did you mean {wrap.format(close[0])}?)" if close else ""


def _unknown(where: _Where, value: Any) -> str:
    key, table = where.key, where.table
    if where.dist is not None:
        return (f"{key} is not used by dist {where.dist!r} (it needs "
                f"{', '.join(PRIOR_DISTS[where.dist])})")
    if table is _ConfigFile and isinstance(value, Mapping):
        return (f"unknown section [{key}]" + _did_you_mean(key, SECTIONS, wrap="[{}]")
                + f"; sections are {', '.join(f'[{s}]' for s in SECTIONS)}")
    if table is None or table.form is None:  # the file or a [section]: any key may be meant
        return f"unknown key '{key}'" + _did_you_mean(key, _all_keys())
    parent, _, name = key.rpartition(".")
    return f"{parent}: unknown {table.member} {name!r}" + _did_you_mean(name, table.model_fields)


def _message(err: Mapping[str, Any]) -> tuple[str, str]:
    """(dotted key, message) of one pydantic error."""
    where = _where(tuple(err["loc"]))
    key, kind, value, ctx = where.key, err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "pdmodel_config":
        key += f".{ctx['subkey']}" if ctx.get("subkey") else ""
        return key, f"{key} {ctx['problem']}"
    if kind == "extra_forbidden":
        return key, _unknown(where, value)
    if kind == "missing":
        needs = (f" (dist {where.dist!r} needs {', '.join(PRIOR_DISTS[where.dist])})"
                 if where.dist else "")
        return key, f"{key} is missing{needs}"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        dists = ", ".join(map(repr, PRIOR_DISTS))
        if kind == "union_tag_not_found":
            return key, f"{key}.dist is missing (one of {dists})"
        tag = ctx.get("tag")
        return key, (f"{key}.dist must be one of {dists}, got {tag!r}"
                     + _did_you_mean(str(tag).lower(), PRIOR_DISTS))
    if kind in ("model_type", "model_attributes_type", "dict_type") and _tables(where.tp):
        form = next(iter(_tables(where.tp).values())).form or f"[{key}] section"
        return key, f"{key} must be a table ({form}), got {value!r}"
    tp = _unwrap(where.tp)[0]
    if kind == "literal_error" and get_origin(tp) is Literal:
        choices = get_args(tp)
        hint = _did_you_mean(value.lower(), choices) if isinstance(value, str) else ""
        return key, f"{key} must be one of {', '.join(map(repr, choices))}, got {value!r}{hint}"
    if where.tp is None:
        return key, f"{key}: {err['msg']}"
    return key, f"{key} must be {_expected(where.tp)}, got {value!r}"


def _problems(error: ValidationError) -> list[str]:
    """One message per key (a number-or-list key fails both ways: say it once)."""
    out: dict[str, str] = {}
    for err in error.errors(include_url=False):
        key, text = _message(err)
        out.setdefault(key, text)
    return list(out.values())


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


def _unusual(table: BaseModel, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, warning) for each value outside its ``_Usual`` range."""
    for name, value in table:
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            yield from _unusual(value, key + ".")
            continue
        if value is None:
            continue
        tp, meta = _unwrap(_annotation(type(table), name))
        if get_origin(tp) in (Union, UnionType):  # a number or a list of them
            meta = _unwrap(get_args(tp)[0])[1]
        usual = next((m for m in meta if isinstance(m, _Usual)), None)
        values = value if isinstance(value, tuple) else (value,)
        if usual is None or not all(isinstance(v, int | float) for v in values):
            continue
        lo = -np.inf if usual.lo is None else usual.lo
        hi = np.inf if usual.hi is None else usual.hi
        if any(not lo <= v <= hi for v in values):
            where = (f"below {usual.lo:g}" if usual.hi is None else f"above {usual.hi:g}"
                     if usual.lo is None else f"outside {usual.lo:g}..{usual.hi:g}")
            yield key, (f"{key} = {value!r} is unusual ({where}: {usual.why}); check "
                        "that it is meant")


# --------------------------------------------------------------------------- parse


def _validate(data: Mapping[str, Any], source: str | os.PathLike,
              base: str | os.PathLike | None) -> tuple[FitConfig, _ConfigFile]:
    if not isinstance(data, Mapping):
        raise ConfigError(source, [f"a configuration must be a table, got {data!r}"])
    context = {"base": None if base is None else Path(os.path.abspath(base))}
    try:
        file = _ConfigFile.model_validate(data, context=context)
    except ValidationError as e:
        raise ConfigError(source, _problems(e)) from None
    cfg = _to_config(file)
    problems = _cross_checks(cfg)
    if problems:
        raise ConfigError(source, problems)
    return cfg, file


def _warn(file: _ConfigFile, source: str | os.PathLike, keys: Iterable[str] | None = None,
          stacklevel: int = 2) -> None:
    """ConfigWarning for each unusual value (only under ``keys``, when given); ``stacklevel``
    counts from the function calling this one."""
    keys = None if keys is None else tuple(keys)
    for key, text in _unusual(file):
        if keys is None or any(key == k or key.startswith(k + ".") for k in keys):
            warnings.warn(f"{source}: {text}", ConfigWarning, stacklevel=stacklevel + 1)


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

    Warns
    -----
    ConfigWarning
        For each legal but unusual value (the table schemas declare the usual ranges).
    """
    cfg, file = _validate(data, source, base)
    _warn(file, source)
    return cfg


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

    Warns
    -----
    ConfigWarning
        For each legal but unusual value (e.g. ``model.patients`` above 100,000).
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
    cfg, file = _validate(data, path, path.parent)
    _warn(file, path)
    return cfg


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

    Warns
    -----
    ConfigWarning
        For each overridden key whose new value is legal but unusual.
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
    try:
        cfg, file = _validate(data, source, None)
    except ConfigError as e:
        raise ConfigError(source, problems + e.problems) from None
    if problems:
        raise ConfigError(source, problems)
    _warn(file, source, [key for key, _ in pairs])
    return cfg


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
