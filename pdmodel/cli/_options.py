"""Declared ranges of the command-line options (pydantic models), checked before any work.

Each command builds its options model with :func:`checked`; every bad value is reported at
once, naming the option, its allowed range and what was given (exit code 2), and legal but
implausible values (a 300 kg patient) are warned about on standard error.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError, ConfigWarning
from ..vocab import MAX_DAYS, TUMOURS

MAX_WEEKS = MAX_DAYS / 7.0
"""Longest ``--weeks`` (ten years: :data:`pdmodel.vocab.MAX_DAYS` days)."""

PLAUSIBLE_WEIGHT_KG = (30.0, 200.0)
"""Body weights outside this range (kg) are legal but warned about."""

_Weeks = Annotated[float, Field(gt=0, le=MAX_WEEKS, allow_inf_nan=False,
                                description="weeks from the first dose")]
_Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False,
                                   description="fraction of patients")]


class _Options(BaseModel):
    """Base of the option models: frozen, no unknown fields, finite numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class PredictOptions(_Options):
    """``pdmodel predict`` options with their ranges."""

    weeks: _Weeks = 52.0
    weight: Annotated[float, Field(gt=0, le=500, description="median body weight, kg")] = 80.0
    setting: str | None = None
    tumour: str | None = None
    preexisting_ad: _Fraction = 0.0
    antibody_positive: _Fraction | None = None
    arm_size: Annotated[int, Field(ge=1, le=100_000, description="patients in the arm")] = 300
    draws: Annotated[int, Field(ge=1, le=100_000, description="posterior draws")] = 100
    plot: Path | None = None

    @field_validator("setting")
    @classmethod
    def _setting(cls, v):
        if v is not None and v not in ("metastatic", "adjuvant"):
            raise ValueError("must be metastatic or adjuvant")
        return v

    @field_validator("tumour")
    @classmethod
    def _tumour(cls, v):
        if v is not None and v not in TUMOURS:
            raise ValueError(f"must be one of {', '.join(TUMOURS)}")
        return v

    @field_validator("plot")
    @classmethod
    def _plot(cls, v):
        if v is not None:
            if v.suffix.lower() != ".png":
                raise ValueError("must name a .png file")
            _writable_parent(v)
        return v

    @property
    def days(self) -> int:
        """Whole days of the horizon (at least 1)."""
        return max(1, math.ceil(self.weeks * 7))


class SimulateOptions(_Options):
    """``pdmodel simulate`` options with their ranges."""

    weeks: _Weeks = 52.0
    weight: Annotated[float | None, Field(gt=0, le=500, description="body weight, kg")] = None
    step: Annotated[float, Field(gt=0, le=365, description="output grid spacing, days")] = 1.0
    patients: Annotated[int, Field(ge=1, le=1_000_000,
                                   description="virtual patients")] = 1000
    seed: Annotated[int, Field(ge=0, le=2**63 - 1, description="random seed")] = 0
    output: Path | None = None

    @field_validator("output")
    @classmethod
    def _output(cls, v):
        if v is not None:
            _writable_parent(v)
        return v


class DesignOptions(_Options):
    """``pdmodel design`` options with their ranges (the specification itself is checked by
    :func:`pdmodel.design`)."""

    week: _Weeks = 52.0
    tumour: str | None = None
    preexisting_ad: _Fraction = 0.0
    weight: Annotated[float, Field(gt=0, le=500, description="median body weight, kg")] = 80.0
    draws: Annotated[int, Field(ge=1, le=10_000, description="posterior draws")] = 32
    patients: Annotated[int, Field(ge=1, le=100_000, description="virtual patients")] = 16
    starts: Annotated[int, Field(ge=1, le=1_000, description="starts of the search")] = 3
    steps: Annotated[int, Field(ge=1, le=100_000, description="Adam steps")] = 25
    seed: Annotated[int, Field(ge=0, le=2**63 - 1, description="random seed")] = 0

    _tumour = field_validator("tumour")(PredictOptions._tumour.__func__)


def _writable_parent(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name")
    if not parent.is_dir():
        raise ValueError(f"folder {parent} does not exist (create it first)")


def checked[Options: _Options](cls: type[Options], **values) -> Options:
    """``cls(**values)`` or a :class:`~pdmodel.errors.ConfigError` listing every bad option
    as ``--name: must be RANGE (meaning), got VALUE``; implausible weights are warned about."""
    try:
        options = cls(**values)
    except ValidationError as err:
        raise ConfigError("command line", [_problem(cls, e) for e in err.errors()]) from None
    weight = getattr(options, "weight", None)
    if weight is not None and not PLAUSIBLE_WEIGHT_KG[0] <= weight <= PLAUSIBLE_WEIGHT_KG[1]:
        warnings.warn(f"--weight {weight:g} kg is outside the usual adult range "
                      f"{PLAUSIBLE_WEIGHT_KG[0]:g}-{PLAUSIBLE_WEIGHT_KG[1]:g} kg; is it in kg?",
                      ConfigWarning, stacklevel=2)
    return options


def _problem(cls: type[_Options], error: dict) -> str:
    """One pydantic error as ``--option: must be ..., got ...``."""
    name = str(error["loc"][0]) if error["loc"] else "?"
    option = "--" + name.replace("_", "-")
    field = cls.model_fields.get(name)
    got = error.get("input")
    got = str(got) if isinstance(got, Path) else got
    if error["type"] == "value_error":
        return f"{option}: {str(error['ctx']['error'])}, got {got!r}".replace(", got None", "")
    limits = _limits(field) if field is not None else ""
    meaning = f" ({field.description})" if field is not None and field.description else ""
    if limits:
        return f"{option}: must be {limits}{meaning}, got {got!r}"
    return f"{option}: {error['msg'].lower()}{meaning}, got {got!r}"


def _limits(field) -> str:
    """The numeric range of a pydantic field, e.g. ``a finite number > 0 and <= 521.9``."""
    bounds = []
    for m in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(m, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value:.6g}")
    kind = "a whole number" if field.annotation is int else "a finite number"
    return (f"{kind} " + " and ".join(bounds)) if bounds else ""
