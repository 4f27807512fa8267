"""Save and load pdmodel objects without pickle: JSON for parameters, netCDF for populations.

A JSON file starts with a header ``{"format": "pdmodel", "kind": <class name>, "version": 1,
"pdmodel_version": ...}`` and holds the object under ``"data"``. Fields are found by
introspection (``dataclasses.fields``), so a field added to a model is saved without changes
here. Values are tagged so that a round trip is exact:

* arrays as ``{"array": dtype, "shape": [...], "data": [flat values]}`` (``"ndarray"`` for
  numpy arrays); floats are written with ``repr`` (the shortest text that parses back to the
  same double), non-finite values as the strings ``"inf"``, ``"-inf"``, ``"nan"``;
* tuples as ``{"tuple": [...]}``, nested modules/dataclasses as ``{"class": name, "fields":
  {...}}``; ``None``, booleans, integers, strings and finite floats as themselves.

A :class:`~pdmodel.Population` (arrays ``[patient, ...]``) is written as netCDF4 (xarray,
engine ``h5netcdf``) with the same header in its global attributes. Every write goes to a
temporary file in the target folder first and is then moved over the target (``os.replace``),
so an interrupted save never leaves a half-written file where a good one stood.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._version import __version__
from .errors import RegimenError, SaveFormatError
from .fit import FitSpec, FittedParameter, ObservationParams, Params, Prior
from .io import atomic_write, atomic_write_text
from .irae import IraeModel, ManagementPolicy, Population
from .regimen import Regimen

FORMAT = "pdmodel"
VERSION = 1
"""Version of the file format this pdmodel writes (and the newest it reads)."""

_JSON_KINDS: dict[str, type] = {
    c.__name__: c
    for c in (IraeModel, ObservationParams, Params, ManagementPolicy, FitSpec)
}
_NESTED: dict[str, type] = _JSON_KINDS | {c.__name__: c for c in (FittedParameter, Prior)}
KINDS: tuple[str, ...] = (*_JSON_KINDS, "Regimen", "Population")
"""Kinds of object :func:`save` writes and :func:`load` reads."""

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64"}
_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}




class _Bad(Exception):
    """Internal: a problem at a location inside the file (turned into SaveFormatError)."""


# --------------------------------------------------------------------------------- encoding


def _float(x: float):
    return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def _encode_array(x, tag: str) -> dict:
    arr = np.asarray(x)
    if arr.dtype.name not in _DTYPES:
        raise TypeError(f"cannot save an array of dtype {arr.dtype}; supported: "
                        f"{', '.join(sorted(_DTYPES))}")
    flat = arr.reshape(-1).tolist()
    if arr.dtype.kind == "f":
        flat = [_float(v) for v in flat]
    return {tag: arr.dtype.name, "shape": list(arr.shape), "data": flat}


def _encode(value, where: str):
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        v = _float(value)
        return v if isinstance(v, float) else {"float": v}
    if isinstance(value, jax.Array):
        return _encode_array(value, "array")
    if isinstance(value, np.ndarray | np.generic):
        return _encode_array(value, "ndarray")
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(value) and type(value).__name__ in _NESTED \
            and _NESTED[type(value).__name__] is type(value):
        return {"class": type(value).__name__,
                "fields": {f.name: _encode(getattr(value, f.name), f"{where}.{f.name}")
                           for f in dataclasses.fields(value) if f.init}}
    raise TypeError(f"cannot save {where}: values of type {type(value).__name__} are not "
                    "supported")


# --------------------------------------------------------------------------------- decoding


def _decode_array(obj: dict, tag: str, where: str):
    if set(obj) != {tag, "shape", "data"}:
        raise _Bad(f"{where}: an array needs exactly the keys {tag!r}, 'shape', 'data', got "
                   f"{sorted(obj)}")
    dtype, shape, data = obj[tag], obj["shape"], obj["data"]
    if dtype not in _DTYPES:
        raise _Bad(f"{where}: unsupported dtype {dtype!r}")
    if not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool)
                                            and n >= 0 for n in shape)):
        raise _Bad(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
    if not isinstance(data, list) or len(data) != math.prod(shape):
        n = len(data) if isinstance(data, list) else type(data).__name__
        raise _Bad(f"{where}: shape {tuple(shape)} needs {math.prod(shape)} values, got {n}")
    kind = np.dtype(dtype).kind
    values = []
    for v in data:
        if kind == "f" and isinstance(v, str) and v in _NONFINITE:
            v = _NONFINITE[v]
        ok = {"b": isinstance(v, bool),
              "i": isinstance(v, int) and not isinstance(v, bool),
              "u": isinstance(v, int) and not isinstance(v, bool) and v >= 0,
              "f": isinstance(v, int | float) and not isinstance(v, bool)}[kind]
        if not ok:
            raise _Bad(f"{where}: value {v!r} is not a valid {dtype}")
        values.append(v)
    try:
        arr = np.array(values, dtype=dtype).reshape(shape)
    except OverflowError as err:
        raise _Bad(f"{where}: {err}") from None
    return jnp.asarray(arr) if tag == "array" else (arr if arr.ndim else arr[()])


def _decode(value, where: str):
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise _Bad(f"{where}: unexpected value {value!r}")
    if "array" in value:
        return _decode_array(value, "array", where)
    if "ndarray" in value:
        return _decode_array(value, "ndarray", where)
    if set(value) == {"float"} and value["float"] in _NONFINITE:
        return _NONFINITE[value["float"]]
    if set(value) == {"tuple"} and isinstance(value["tuple"], list):
        return tuple(_decode(v, f"{where}[{i}]") for i, v in enumerate(value["tuple"]))
    if set(value) == {"class", "fields"}:
        return _decode_object(value["class"], value["fields"], where)
    raise _Bad(f"{where}: unrecognised entry with keys {sorted(value)}")


def _reference(cls: type):
    """A default instance to check shapes against, or ``None`` (no defaults)."""
    try:
        return cls()
    except TypeError:
        return None


def _decode_object(name, fields, where: str):
    cls = _NESTED.get(name) if isinstance(name, str) else None
    if cls is None:
        raise _Bad(f"{where}: unknown class {name!r}; expected one of {sorted(_NESTED)}")
    if not isinstance(fields, dict):
        raise _Bad(f"{where}: the fields of {name} must be a JSON object")
    expected = [f.name for f in dataclasses.fields(cls) if f.init]
    missing = [k for k in expected if k not in fields]
    if missing:
        raise _Bad(f"{where}: {name} is missing field(s) {', '.join(missing)}")
    extra = [k for k in fields if k not in expected]
    if extra:
        raise _Bad(f"{where}: {name} has unknown field(s) {', '.join(extra)} (written by another "
                   "pdmodel version?)")
    kwargs = {k: _decode(fields[k], f"{where}.{k}") for k in expected}
    ref = _reference(cls) if issubclass(cls, eqx.Module) else None
    if ref is not None:
        for k, v in kwargs.items():
            r = getattr(ref, k)
            if isinstance(r, jax.Array):
                if not isinstance(v, jax.Array):
                    raise _Bad(f"{where}.{k}: expected an array, got {type(v).__name__}")
                if v.shape != r.shape:
                    raise _Bad(f"{where}.{k}: wrong shape {v.shape}; {name}.{k} has shape "
                               f"{r.shape}")
                if v.dtype.kind != r.dtype.kind:
                    raise _Bad(f"{where}.{k}: wrong dtype {v.dtype} (expected {r.dtype.kind!r} "
                               "kind)")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise _Bad(f"{where}: invalid {name}: {err}") from None
    if cls is FitSpec:
        try:
            obj.to_unconstrained(obj.base)
        except (AttributeError, IndexError, TypeError, ValueError) as err:
            raise _Bad(f"{where}: FitSpec entries do not match its base parameters: "
                       f"{err}") from None
    return obj


# ------------------------------------------------------------------------------- public API


def _kind_name(kind) -> str | None:
    if kind is None:
        return None
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", repr(kind))
    if name not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return name


def _header(kind: str) -> dict:


    return {"format": FORMAT, "kind": kind, "version": VERSION, "pdmodel_version": __version__}


def save(obj, path: str | os.PathLike) -> Path:
    """Save a model, parameters, policy, fit specification, regimen or population to a file.

    :class:`IraeModel`, :class:`ObservationParams`, :class:`Params`,
    :class:`ManagementPolicy`, :class:`FitSpec` and :class:`Regimen` (its canonical text) are
    written as JSON, a :class:`Population` as netCDF4 (use ``.json`` and ``.nc`` names). The
    round trip through :func:`load` is exact: arrays come back bitwise equal, with their dtype
    and shape. The write is atomic (temporary file in the same folder, then ``os.replace``).

    Parameters
    ----------
    obj : IraeModel, ObservationParams, Params, ManagementPolicy, FitSpec, Regimen or Population
        What to save (values in their natural units; see each class).
    path : str or os.PathLike
        Target file; its folder is created if needed, an existing file is replaced.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        ``obj`` is not one of the supported kinds, or holds a value that cannot be saved.

    Examples
    --------
    >>> import os, tempfile
    >>> import equinox as eqx
    >>> import jax.numpy as jnp
    >>> import pdmodel as pdm
    >>> folder = tempfile.mkdtemp()
    >>> model = eqx.tree_at(lambda m: m.k_e, pdm.IraeModel(), jnp.asarray(0.07))
    >>> path = pdm.save(model, os.path.join(folder, "model.json"))
    >>> float(pdm.load(path).k_e)
    0.07
    >>> reg = pdm.Regimen.parse("nivolumab 240 mg q2w")
    >>> pdm.load(pdm.save(reg, os.path.join(folder, "regimen.json"))) == reg
    True
    """
    path = Path(path)
    if isinstance(obj, Population):
        _save_population(obj, path)
        return path
    if isinstance(obj, Regimen):
        doc = _header("Regimen") | {"text": str(obj)}
    else:
        name = type(obj).__name__
        if _JSON_KINDS.get(name) is not type(obj):
            raise TypeError(f"cannot save a {type(obj).__name__}; pdmodel.save writes "
                            f"{', '.join(KINDS)}")
        doc = _header(name) | {"data": _encode(obj, name)["fields"]}
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"

    atomic_write_text(path, text)
    return path


def load(path: str | os.PathLike, kind: type | str | None = None):
    """Load an object written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`pdmodel.save` (JSON or netCDF; recognised by its content).
    kind : type or str, optional
        Expected kind (e.g. ``pdm.IraeModel`` or ``"Population"``); a file holding another
        kind raises :class:`SaveFormatError`. ``None`` accepts any kind.

    Returns
    -------
    IraeModel, ObservationParams, Params, ManagementPolicy, FitSpec, Regimen or Population
        Equal to the saved object: arrays bitwise equal with the same dtype (float64 arrays
        become float32 if ``jax_enable_x64`` is off), static fields equal.

    Raises
    ------
    SaveFormatError
        The file is missing, not a pdmodel file, of another kind, from a newer format version,
        truncated or corrupt, or has missing/unknown fields or wrong shapes; the message names
        the file and the problem.
    ValueError
        ``kind`` is not a kind pdmodel saves.

    Examples
    --------
    >>> import os, tempfile
    >>> import pdmodel as pdm
    >>> path = os.path.join(tempfile.mkdtemp(), "policy.json")
    >>> _ = pdm.save(pdm.ManagementPolicy(delay_days=4.0, trigger_grade=3), path)
    >>> policy = pdm.load(path, kind=pdm.ManagementPolicy)
    >>> policy.trigger_grade, float(policy.delay_days)
    (3, 4.0)
    """
    path = Path(path)
    expected = _kind_name(kind)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as err:
        raise SaveFormatError(path, f"cannot read the file: {err.strerror or err}") from None
    if head.startswith(_HDF5_SIGNATURE):
        return _load_population(path, expected)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SaveFormatError(path, "not a pdmodel file (neither JSON nor netCDF)") from None
    if not text.lstrip().startswith("{"):
        raise SaveFormatError(path, "not a pdmodel file (neither a JSON object nor netCDF)")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise SaveFormatError(path, f"truncated or corrupt JSON (line {err.lineno}, column "
                                    f"{err.colno}: {err.msg})") from None
    name = _check_header(path, doc, expected)
    if name == "Population":
        raise SaveFormatError(path, "a JSON file whose header says it holds a Population; "
                                    "populations are saved as netCDF")
    try:
        if name == "Regimen":
            _only_keys(doc, {"text"})
            if not isinstance(doc["text"], str):
                raise _Bad("'text' must be the regimen's text")
            try:
                return Regimen.parse(doc["text"])
            except RegimenError as err:
                raise _Bad(f"invalid regimen text: {err}") from None
        _only_keys(doc, {"data"})
        return _decode_object(name, doc["data"], name)
    except _Bad as err:
        raise SaveFormatError(path, str(err)) from None


def _only_keys(doc: dict, keys: set[str]) -> None:
    body = set(doc) - {"format", "kind", "version", "pdmodel_version"}
    if body != keys:
        missing, extra = keys - body, body - keys
        raise _Bad(f"missing {sorted(missing)}" if missing else f"unknown keys {sorted(extra)}")


def _check_header(path: Path, doc, expected: str | None) -> str:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SaveFormatError(path, "not a pdmodel file (no {\"format\": \"pdmodel\"} header)")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SaveFormatError(path, f"unknown format version {version!r}")
    if version > VERSION:
        raise SaveFormatError(path, f"written by a newer pdmodel (format version {version}); "
                                    f"this pdmodel reads version {VERSION}: upgrade pdmodel")
    name = doc.get("kind")
    if name not in KINDS:
        raise SaveFormatError(path, f"unknown kind {name!r}; expected one of {', '.join(KINDS)}")
    if expected is not None and name != expected:
        raise SaveFormatError(path, f"holds a {name}, not a {expected}")
    return name


# ----------------------------------------------------------------------------- populations


def _dims(name: str, ndim: int) -> tuple[str, ...]:
    return ("patient",) + tuple(f"{name}_{k}" for k in range(1, ndim))


def _save_population(pop: Population, path: Path) -> None:
    import xarray as xr

    data = {}
    for f in dataclasses.fields(pop):
        if getattr(pop, f.name) is None:  # optional covariate not set (setting)
            continue
        arr = np.asarray(getattr(pop, f.name))
        if arr.dtype.name not in _DTYPES or arr.ndim < 1:
            raise TypeError(f"cannot save Population.{f.name} of dtype {arr.dtype} and shape "
                            f"{arr.shape}")
        data[f.name] = (_dims(f.name, arr.ndim), arr)
    header = _header("Population")
    ds = xr.Dataset(data, attrs=header)
    encoding = {k: {"_FillValue": None} for k in data}
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding))


def _load_population(path: Path, expected: str | None) -> Population:
    import xarray as xr

    try:
        ds = xr.load_dataset(path, engine="h5netcdf", decode_cf=False, mask_and_scale=False)
    except Exception as err:  # noqa: BLE001 - any read failure means a corrupt file
        raise SaveFormatError(path, f"truncated or corrupt netCDF file ({type(err).__name__}: "
                                    f"{err})") from None
    attrs = dict(ds.attrs)
    for k in ("version",):
        if isinstance(attrs.get(k), np.integer):
            attrs[k] = int(attrs[k])
    name = _check_header(path, attrs, expected)
    if name != "Population":
        raise SaveFormatError(path, f"a netCDF file whose header says it holds a {name}; only "
                                    "populations are saved as netCDF")
    names = [f.name for f in dataclasses.fields(Population) if f.init]
    optional = {"setting"}  # files written before the setting covariate have none
    names = [k for k in names if k in ds.data_vars or k not in optional]
    missing = [k for k in names if k not in ds.data_vars]
    if missing:
        raise SaveFormatError(path, f"Population is missing variable(s) {', '.join(missing)}")
    extra = [k for k in ds.data_vars if k not in names]
    if extra:
        raise SaveFormatError(path, f"Population has unknown variable(s) {', '.join(extra)}")
    arrays = {k: ds[k].values for k in names}
    z_pk = arrays.get("z_pk")
    n = arrays[names[0]].shape[0] if arrays[names[0]].ndim else 0
    slots = z_pk.shape[1] if z_pk is not None and z_pk.ndim == 3 else 1
    ref = Population.typical(max(n, 1), max_agents=slots)
    for k, arr in arrays.items():
        r = getattr(ref, k)
        if arr.shape != r.shape:
            raise SaveFormatError(path, f"Population.{k}: wrong shape {arr.shape}; expected "
                                        f"{r.shape} for {n} patients")
        if arr.dtype.name not in _DTYPES or arr.dtype.kind != r.dtype.kind:
            raise SaveFormatError(path, f"Population.{k}: wrong dtype {arr.dtype}")
    return Population(**{k: jnp.asarray(v) for k, v in arrays.items()})
