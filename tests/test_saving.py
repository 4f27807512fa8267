"""pdmodel.save / pdmodel.load: exact round trips without pickle, and clear errors."""

import dataclasses
import json
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdmodel as pdm
import pdmodel.saving as saving


def assert_identical(a, b):
    """Same pytree structure (static fields included) and bitwise-equal leaves, same dtypes."""
    assert type(a) is type(b)
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        assert type(x) is type(y)
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def modified_model():
    m = pdm.IraeModel()
    m = eqx.tree_at(lambda m: m.k_e, m, jnp.asarray(0.1 + 0.2))  # not exactly representable
    m = eqx.tree_at(lambda m: m.background, m, m.background * np.pi)
    m = eqx.tree_at(lambda m: m.agent_effect, m, m.agent_effect.at[3].set(-1e-300))
    m = eqx.tree_at(lambda m: m.w_ab, m, m.w_ab.at[0].set(-0.0))
    return eqx.tree_at(lambda m: m.susceptibility, m, m.susceptibility / 3.0)


def modified_spec():
    spec = pdm.FitSpec.default(fixed=("agent_effect",))
    obs = eqx.tree_at(lambda o: o.concentration, spec.base.obs, jnp.asarray(1 / 7))
    entries = spec.entries[:5] + (
        pdm.FittedParameter("model", "k_rep", pdm.Prior("lognormal", (0.1, 0.2), 0.3), (0,)),
        pdm.FittedParameter("model", "tau", pdm.Prior("normal", 0.1, 1 / 3)),
    )
    return pdm.FitSpec(entries=entries, base=pdm.Params(model=modified_model(), obs=obs))


OBJECTS = {
    "IraeModel-default": pdm.IraeModel,
    "IraeModel-modified": modified_model,
    "ObservationParams": lambda: pdm.ObservationParams(
        endpoint_drug=(1.0, 0.7, 0.3, 0.8, 1.0), concentration=12.5),
    "Params": lambda: pdm.Params(model=modified_model()),
    "ManagementPolicy-default": pdm.ManagementPolicy,
    "ManagementPolicy-modified": lambda: pdm.ManagementPolicy(
        enabled=True, trigger_grade=3, delay_days=2.5, steroid_dose=0.1 + 0.2,
        max_infliximab_doses=0, hold_at_grade2=False, discontinue_grade=0),
    "ManagementPolicy-none": pdm.ManagementPolicy.none,
    "FitSpec-default": pdm.FitSpec.default,
    "FitSpec-modified": modified_spec,
    "Population": lambda: pdm.Population.sample(
        jax.random.key(3), 5, preexisting_ad=0.4, median_duration_days=100.0, max_agents=3,
        tumour="nsclc"),
    "Population-typical": lambda: pdm.Population.typical(2, weight_kg=61.3),
}


@pytest.mark.parametrize("name", list(OBJECTS))
def test_round_trip_is_exact(tmp_path, name):
    obj = OBJECTS[name]()
    suffix = ".nc" if isinstance(obj, pdm.Population) else ".json"
    path = pdm.save(obj, tmp_path / f"obj{suffix}")
    back = pdm.load(path)
    assert_identical(obj, back)
    if isinstance(obj, pdm.FitSpec):
        assert back.entries == obj.entries
        assert [type(e.prior.median) for e in back.entries] == \
            [type(e.prior.median) for e in obj.entries]
    # a second round trip writes the same bytes (JSON)
    if suffix == ".json":
        again = pdm.save(back, tmp_path / "again.json")
        assert again.read_text() == path.read_text()


def test_population_keeps_infinite_stop_days_and_int_dtype(tmp_path):
    pop = pdm.Population.typical(3)
    back = pdm.load(pdm.save(pop, tmp_path / "pop.nc"), kind="Population")
    assert np.all(np.isinf(back.stop_day))
    assert back.tumour.dtype == pop.tumour.dtype and back.tumour.dtype.kind == "i"
    assert isinstance(back.z_pk, jax.Array)


def test_float32_values_round_trip(tmp_path):
    m = jax.tree.map(lambda x: x.astype(jnp.float32), modified_model())
    back = pdm.load(pdm.save(m, tmp_path / "m32.json"))
    assert back.k_e.dtype == jnp.float32
    assert_identical(m, back)


def test_non_finite_values_round_trip_as_standard_json(tmp_path):
    """Non-finite numbers (here in observation parameters, which are not range-checked) are
    written as standard JSON and read back."""
    obs = eqx.tree_at(lambda o: o.endpoint_backbone, pdm.ObservationParams(),
                      jnp.array([np.inf, -np.inf, np.nan, 0.2, 1.0]))
    path = pdm.save(obs, tmp_path / "obs.json")
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))
    assert_identical(obs, pdm.load(path))


def test_a_saved_model_with_a_nan_parameter_is_refused_naming_it(tmp_path):
    m = eqx.tree_at(lambda m: m.sigma, pdm.IraeModel(),
                    jnp.array([np.inf, -np.inf, np.nan, 0.7, 0.7, 0.7]))
    path = pdm.save(m, tmp_path / "m.json")  # saving is allowed (e.g. to report it) ...
    with pytest.raises(pdm.SaveFormatError, match="IraeModel.sigma: must be finite"):
        pdm.load(path)  # ... loading it as a model is not


def test_regimen_round_trip_uses_text(tmp_path):
    reg = pdm.Regimen.parse("nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then "
                            "nivolumab 480 mg q4w, stop at day 300.5")
    path = pdm.save(reg, tmp_path / "reg.json")
    doc = json.loads(path.read_text())
    assert doc["text"] == str(reg)
    assert {k: doc[k] for k in ("format", "kind", "version")} == \
        {"format": "pdmodel", "kind": "Regimen", "version": 1}
    assert pdm.load(path, kind=pdm.Regimen) == reg


def test_header_and_new_fields_are_picked_up(tmp_path):
    path = pdm.save(pdm.IraeModel(), tmp_path / "m.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "pdmodel" and doc["kind"] == "IraeModel" and doc["version"] == 1
    assert set(doc["data"]) == {f.name for f in dataclasses.fields(pdm.IraeModel)}


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = pdm.save(pdm.IraeModel(), tmp_path / "m.json")
    good = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(saving.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        pdm.save(modified_model(), path)
    with pytest.raises(OSError, match="disk full"):
        pdm.save(pdm.Population.typical(2), tmp_path / "p.nc")
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["m.json"]


def test_save_rejects_unsupported_objects(tmp_path):
    with pytest.raises(TypeError, match="cannot save a dict"):
        pdm.save({"a": 1}, tmp_path / "x.json")
    with pytest.raises(TypeError, match="cannot save a SolverOptions"):
        pdm.save(pdm.SolverOptions(), tmp_path / "x.json")
    with pytest.raises(ValueError, match="unknown kind"):
        pdm.load(tmp_path / "x.json", kind="Banana")


# ------------------------------------------------------------------------------ error cases


def _doc(obj=None):
    return json.loads(json.dumps(
        saving._header("IraeModel")
        | {"data": saving._encode(obj or pdm.IraeModel(), "m")["fields"]}))


def _write(tmp_path, content, name="bad.json"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _broken(change):
    doc = _doc()
    change(doc)
    return doc


JSON_ERRORS = {
    "newer version": (_broken(lambda d: d.update(version=2)), r"newer pdmodel \(format version 2"),
    "bad version": (_broken(lambda d: d.update(version="one")), "unknown format version 'one'"),
    "no version": (_broken(lambda d: d.pop("version")), "unknown format version None"),
    "unknown kind": (_broken(lambda d: d.update(kind="Banana")), "unknown kind 'Banana'"),
    "population as json": (_broken(lambda d: d.update(kind="Population")),
                           "populations are saved as netCDF"),
    "not pdmodel": ({"hello": "world"}, "not a pdmodel file"),
    "other format": (_broken(lambda d: d.update(format="other")), "not a pdmodel file"),
    "json list": ([1, 2], "not a pdmodel file"),
    "truncated": (json.dumps(_doc())[:200], "truncated or corrupt JSON"),
    "empty": ("", "not a pdmodel file"),
    "binary": (b"\x00\x01\xff\xfe", "not a pdmodel file"),
    "csv": ("a,b\n1,2\n", "not a pdmodel file"),
    "missing field": (_broken(lambda d: d["data"].pop("k_e")), r"missing field\(s\) k_e"),
    "unknown field": (_broken(lambda d: d["data"].update(zeta=1.0)), r"unknown field\(s\) zeta"),
    "no data": (_broken(lambda d: d.pop("data")), r"missing \['data'\]"),
    "wrong shape": (_broken(lambda d: d["data"].update(
        k_e={"array": "float64", "shape": [2], "data": [1.0, 2.0]})),
        r"IraeModel\.k_e: wrong shape \(2,\)"),
    "wrong organ shape": (_broken(lambda d: d["data"].update(
        sigma={"array": "float64", "shape": [5], "data": [1.0] * 5})), r"wrong shape \(5,\)"),
    "shape/data mismatch": (_broken(lambda d: d["data"].update(
        k_e={"array": "float64", "shape": [], "data": [1.0, 2.0]})), "needs 1 values, got 2"),
    "bad value": (_broken(lambda d: d["data"].update(
        k_e={"array": "float64", "shape": [], "data": ["x"]})), "'x' is not a valid float64"),
    "bad dtype": (_broken(lambda d: d["data"].update(
        k_e={"array": "complex128", "shape": [], "data": [1.0]})), "unsupported dtype"),
    "wrong dtype kind": (_broken(lambda d: d["data"].update(
        k_e={"array": "int64", "shape": [], "data": [1]})), "wrong dtype int64"),
    "not an array": (_broken(lambda d: d["data"].update(k_e="fast")), "expected an array"),
    "garbage entry": (_broken(lambda d: d["data"].update(k_e={"what": 1})),
                      "unrecognised entry"),
}


@pytest.mark.parametrize("case", list(JSON_ERRORS))
def test_bad_json_files_raise_save_format_error(tmp_path, case):
    content, match = JSON_ERRORS[case]
    path = _write(tmp_path, content)
    with pytest.raises(pdm.SaveFormatError, match=match) as info:
        pdm.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.path == path
    assert info.value.__cause__ is None  # no traceback from deep inside


def test_wrong_kind(tmp_path):
    path = pdm.save(pdm.ManagementPolicy(), tmp_path / "policy.json")
    with pytest.raises(pdm.SaveFormatError, match="holds a ManagementPolicy, not a IraeModel"):
        pdm.load(path, kind=pdm.IraeModel)
    pop = pdm.save(pdm.Population.typical(2), tmp_path / "pop.nc")
    with pytest.raises(pdm.SaveFormatError, match="holds a Population, not a Params"):
        pdm.load(pop, kind="Params")


def test_missing_file(tmp_path):
    with pytest.raises(pdm.SaveFormatError, match="cannot read the file"):
        pdm.load(tmp_path / "nope.json")
    with pytest.raises(pdm.SaveFormatError, match="cannot read the file"):
        pdm.load(tmp_path)  # a folder


def test_invalid_nested_values(tmp_path):
    path = pdm.save(pdm.FitSpec.default(), tmp_path / "spec.json")
    doc = json.loads(path.read_text())
    doc["data"]["entries"]["tuple"][0]["fields"]["prior"]["fields"]["dist"] = "cauchy"
    with pytest.raises(pdm.SaveFormatError, match="invalid Prior: unknown prior distribution"):
        pdm.load(_write(tmp_path, doc))
    doc = json.loads(path.read_text())
    doc["data"]["entries"]["tuple"][0]["fields"]["field"] = "no_such_field"
    with pytest.raises(pdm.SaveFormatError, match="entries do not match its base"):
        pdm.load(_write(tmp_path, doc))
    doc = json.loads(path.read_text())
    doc["data"]["entries"]["tuple"][0]["class"] = "os.system"
    with pytest.raises(pdm.SaveFormatError, match="unknown class 'os.system'"):
        pdm.load(_write(tmp_path, doc))
    doc = json.loads(path.read_text())
    doc["data"]["base"]["fields"]["model"]["fields"]["k_e"]["shape"] = [1]
    with pytest.raises(pdm.SaveFormatError, match=r"FitSpec\.base\.model\.k_e: wrong shape"):
        pdm.load(_write(tmp_path, doc))


def test_invalid_policy_and_regimen(tmp_path):
    path = pdm.save(pdm.ManagementPolicy(), tmp_path / "policy.json")
    doc = json.loads(path.read_text())
    doc["data"]["trigger_grade"] = 7
    with pytest.raises(pdm.SaveFormatError, match="trigger_grade must be 2 or 3"):
        pdm.load(_write(tmp_path, doc))
    path = pdm.save(pdm.Regimen.parse("nivolumab 240 mg q2w"), tmp_path / "reg.json")
    doc = json.loads(path.read_text())
    doc["text"] = "aspirin 100 mg q1d"
    with pytest.raises(pdm.SaveFormatError, match="invalid regimen text: unknown agent"):
        pdm.load(_write(tmp_path, doc))
    doc.pop("text")
    with pytest.raises(pdm.SaveFormatError, match=r"missing \['text'\]"):
        pdm.load(_write(tmp_path, doc))


def _population_file(tmp_path, change):
    import xarray as xr

    path = pdm.save(pdm.Population.typical(3), tmp_path / "pop.nc")
    ds = xr.load_dataset(path, engine="h5netcdf")
    ds = change(ds)
    bad = tmp_path / "bad.nc"
    ds.to_netcdf(bad, engine="h5netcdf")
    return bad


POPULATION_ERRORS = {
    "newer version": (lambda ds: ds.assign_attrs(version=3), "newer pdmodel"),
    "not pdmodel": (lambda ds: ds.assign_attrs(format="cf"), "not a pdmodel file"),
    "other kind": (lambda ds: ds.assign_attrs(kind="IraeModel"), "says it holds a IraeModel"),
    "missing variable": (lambda ds: ds.drop_vars("z_pd"), r"missing variable\(s\) z_pd"),
    "unknown variable": (lambda ds: ds.assign(extra=ds.a0), r"unknown variable\(s\) extra"),
    "wrong shape": (lambda ds: ds.isel(z_organ_1=slice(0, 4)),
                    r"Population\.z_organ: wrong shape \(3, 4\)"),
    "ragged patients": (lambda ds: ds.assign(a0=("n2", np.ones(2))),
                        r"Population\.a0: wrong shape \(2,\)"),
    "wrong dtype": (lambda ds: ds.assign(tumour=ds.tumour.astype(float)),
                    r"Population\.tumour: wrong dtype float64"),
}


@pytest.mark.parametrize("case", list(POPULATION_ERRORS))
def test_bad_population_files_raise_save_format_error(tmp_path, case):
    change, match = POPULATION_ERRORS[case]
    path = _population_file(tmp_path, change)
    with pytest.raises(pdm.SaveFormatError, match=match) as info:
        pdm.load(path)
    assert str(path) in str(info.value)


def test_truncated_population_file(tmp_path):
    path = pdm.save(pdm.Population.typical(3), tmp_path / "pop.nc")
    bad = _write(tmp_path, path.read_bytes()[:1000], "bad.nc")
    with pytest.raises(pdm.SaveFormatError, match="truncated or corrupt netCDF") as info:
        pdm.load(bad)
    assert str(bad) in str(info.value)
