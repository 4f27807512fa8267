"""Regimens (pdmodel.regimen): objects, text parser/printer, infusion lists, errors."""

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdmodel.errors import (
    InvalidDoseError,
    MissingWeightError,
    RegimenError,
    RegimenSyntaxError,
    UnknownAgentError,
)
from pdmodel.regimen import AgentDose, Infusion, Phase, Regimen, Schedule
from pdmodel.vocab import AGENTS, get_agent


def dose(agent, amount, unit, interval=None, n=None, **kw):
    return AgentDose(agent, amount, unit, Schedule(interval, n), **kw)


def reg(*phases, stop_day=None):
    return Regimen(tuple(Phase(tuple(p)) for p in phases), stop_day)


NIVO_IPI = [dose("nivolumab", 1, "mg/kg", 21, 4), dose("ipilimumab", 3, "mg/kg", 21, 4)]

EXAMPLES = {
    "nivolumab 240 mg q2w": reg([dose("nivolumab", 240, "mg", 14)]),
    "pembrolizumab 2 mg/kg q3w": reg([dose("pembrolizumab", 2, "mg/kg", 21)]),
    "ipilimumab 3 mg/kg q3w x4": reg([dose("ipilimumab", 3, "mg/kg", 21, 4)]),
    "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w":
        reg(NIVO_IPI, [dose("nivolumab", 3, "mg/kg", 14)]),
    "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 480 mg q4w":
        reg(NIVO_IPI, [dose("nivolumab", 480, "mg", 28)]),
    "pembrolizumab 200 mg q3w + ipilimumab 50 mg q6w x4":
        reg([dose("pembrolizumab", 200, "mg", 21), dose("ipilimumab", 50, "mg", 42, 4)]),
    "tremelimumab 10 mg/kg q4w x7, then tremelimumab 10 mg/kg q12w":
        reg([dose("tremelimumab", 10, "mg/kg", 28, 7)], [dose("tremelimumab", 10, "mg/kg", 84)]),
    "cemiplimab 350 mg q3w over 30 min": reg([dose("cemiplimab", 350, "mg", 21)]),
    "tremelimumab 300 mg x1 + durvalumab 1500 mg q4w":
        reg([dose("tremelimumab", 300, "mg", None, 1), dose("durvalumab", 1500, "mg", 28)]),
    "nivolumab 3 mg/kg q14d": reg([dose("nivolumab", 3, "mg/kg", 14)]),
    "pembrolizumab 200 mg q3w, stop at day 180":
        reg([dose("pembrolizumab", 200, "mg", 21)], stop_day=180),
    "nivolumab 240 mg q2w from day 7": reg([dose("nivolumab", 240, "mg", 14, start_day=7)]),
}


@pytest.mark.parametrize("text", list(EXAMPLES))
def test_parse_examples(text):
    r = Regimen.parse(text)
    assert r == EXAMPLES[text]
    assert Regimen.parse(str(r)) == r
    assert str(Regimen.parse(str(r))) == str(r)
    assert hash(r) == hash(EXAMPLES[text])


def test_canonical_text():
    r = Regimen.parse("Opdivo 1 MG/KG +  Yervoy 3 mg/kg  Q3W x4 , THEN opdivo 480 mg q28d")
    assert str(r) == ("nivolumab 1 mg/kg q3w x4 + ipilimumab 3 mg/kg q3w x4, "
                      "then nivolumab 480 mg q4w")
    assert str(Regimen.parse("nivolumab 3 mg/kg q10d once over 45 min from day 3.5")) == \
        "nivolumab 3 mg/kg q10d x1 over 45 min from day 3.5"
    assert str(Regimen.parse("cemiplimab 350 mg q3w over 30 min")) == "cemiplimab 350 mg q3w"
    assert str(Regimen.parse("nivolumab 0.3 mg/kg q1.5w")) == "nivolumab 0.3 mg/kg q10.5d"
    assert str(Regimen.parse("nivolumab 240 mg q2w, stop at day 90.5")) == \
        "nivolumab 240 mg q2w, stop at day 90.5"


def test_shared_schedule_applies_only_to_items_without_one():
    r = Regimen.parse("nivolumab 1 mg/kg + atezolizumab 840 mg q2w + ipilimumab 1 mg/kg q6w x2")
    schedules = [d.schedule for d in r.phases[0].doses]
    assert schedules == [Schedule(14.0, None), Schedule(14.0, None), Schedule(42.0, 2)]
    r = Regimen.parse("nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4 over 60 min")
    assert [d.infusion_minutes for d in r.phases[0].doses] == [30.0, 60.0]


def test_infusions_nivo_ipi_then_nivo():
    r = Regimen.parse("nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w")
    inf = r.infusions(days=120, weight_kg=80)
    assert all(isinstance(i, Infusion) for i in inf)
    ipi = [i for i in inf if i.agent == "ipilimumab"]
    nivo = [i for i in inf if i.agent == "nivolumab"]
    assert [i.start for i in ipi] == [0, 21, 42, 63]
    assert {i.amount for i in ipi} == {240.0}
    assert {i.duration for i in ipi} == {90 / 1440}
    assert [(i.start, i.amount) for i in nivo] == [
        (0, 80), (21, 80), (42, 80), (63, 80), (84, 240), (98, 240), (112, 240)]
    assert {i.duration for i in nivo} == {30 / 1440}
    assert inf == sorted(inf, key=lambda i: (i.start, i.agent))
    assert r.phase_starts == (0.0, 84.0)
    assert [i.start for i in r.infusions(days=112, weight_kg=80)][-1] == 98  # strictly before
    stopped = r.stop_at(42)
    assert stopped.stop_day == 42
    assert max(i.start for i in stopped.infusions(days=120, weight_kg=80)) == 21
    assert r.infusions(days=0, weight_kg=80) == []


def test_infusions_phase_starts_and_options():
    r = Regimen.parse("tremelimumab 10 mg/kg q4w x7, then tremelimumab 10 mg/kg q12w")
    assert [i.start for i in r.infusions(days=400, weight_kg=70)] == \
        [0, 28, 56, 84, 112, 140, 168, 196, 280, 364]
    r = Regimen.parse("tremelimumab 300 mg x1 + durvalumab 1500 mg q4w")
    assert r.infusions(days=60) == [
        Infusion("durvalumab", 0.0, 60 / 1440, 1500.0, 1500.0, "mg"),
        Infusion("tremelimumab", 0.0, 60 / 1440, 300.0, 300.0, "mg"),
        Infusion("durvalumab", 28.0, 60 / 1440, 1500.0, 1500.0, "mg"),
        Infusion("durvalumab", 56.0, 60 / 1440, 1500.0, 1500.0, "mg")]
    r = Regimen.parse("pembrolizumab 200 mg q3w, stop at day 180")
    assert [i.start for i in r.infusions(days=1000)][-1] == 168


def test_from_day_and_custom_infusion():
    r = Regimen.parse("nivolumab 240 mg q2w x2 from day 7 + ipilimumab 1 mg/kg q6w x1, "
                      "then cemiplimab 350 mg q3w over 45 min")
    assert r.phases[0].duration_days == 42  # max(7 + 2*14, 0 + 1*42)
    inf = r.infusions(days=70, weight_kg=50)
    assert [(i.agent, i.start) for i in inf] == [
        ("ipilimumab", 0), ("nivolumab", 7), ("nivolumab", 21), ("cemiplimab", 42),
        ("cemiplimab", 63)]
    assert inf[-1].duration == 45 / 1440
    assert inf[0].amount == 50


def test_single_dose_phase_needs_interval_before_then():
    with pytest.raises(RegimenError, match=r"tremelimumab 300 mg x1.*q4w x1"):
        Regimen.parse("tremelimumab 300 mg x1, then durvalumab 1500 mg q4w")
    r = Regimen.parse("tremelimumab 300 mg q4w x1, then durvalumab 1500 mg q4w")
    assert r.phases[0].duration_days == 28
    assert [i.start for i in r.infusions(days=60)] == [0, 28, 56]
    # an interval-less single dose rides along with a dose that has an interval
    r = Regimen.parse("tremelimumab 300 mg x1 + durvalumab 1500 mg q4w x4, "
                      "then durvalumab 1500 mg q4w")
    assert r.phase_starts == (0.0, 112.0)
    assert Phase((dose("tremelimumab", 300, "mg", None, 1, start_day=5),)).duration_days == 5
    with pytest.raises(RegimenError, match="not before the phase ends"):
        Regimen.parse("nivolumab 240 mg q2w x2 + ipilimumab 1 mg x1 from day 28, "
                      "then nivolumab 240 mg q2w")


def test_properties_and_combinators():
    nivo = Regimen.parse("nivolumab 1 mg/kg q3w x4")
    ipi = Regimen.parse("ipilimumab 3 mg/kg q3w x4")
    combo = nivo + ipi
    assert combo == Regimen.parse("nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4")
    full = combo.then(Regimen.parse("nivolumab 480 mg q4w, stop at day 100"))
    assert full.agents == ("nivolumab", "ipilimumab")
    assert full.needs_weight and not Regimen.parse("nivolumab 480 mg q4w").needs_weight
    assert full.stop_day == 84 + 100
    assert full.duration_days == math.inf and combo.duration_days == 84
    assert str(full.stop_at(30)) == str(combo.then(Regimen.parse("nivolumab 480 mg q4w"))) + \
        ", stop at day 30"
    with pytest.raises(RegimenError, match="2-phase"):
        full + nivo  # noqa: B018
    with pytest.raises(RegimenError, match="never ends"):
        Regimen.parse("nivolumab 480 mg q4w").then(nivo)
    with pytest.raises(RegimenError, match="stopped"):
        nivo.stop_at(10).then(ipi)
    with pytest.raises(RegimenError, match="different stop days"):
        nivo.stop_at(10) + ipi.stop_at(20)  # noqa: B018
    with pytest.raises(RegimenError, match="more than once"):
        nivo + nivo  # noqa: B018
    with pytest.raises(InvalidDoseError, match="stop day"):
        nivo.stop_at(-1)


# --- malformed text ------------------------------------------------------------------------

BAD = [
    ("", RegimenSyntaxError, r"empty regimen text ''"),
    ("   ", RegimenSyntaxError, r"empty regimen text"),
    ("nivolumb 3 mg/kg q2w", UnknownAgentError,
     r"unknown agent 'nivolumb' in item 1 of phase 1.*did you mean 'nivolumab'"),
    ("nivolumab 240 mg q2w + keytrudda 200 mg q3w", UnknownAgentError,
     r"'keytrudda' in item 2 of phase 1.*did you mean 'pembrolizumab'"),
    ("nivolumab mg q2w", RegimenSyntaxError, r"missing dose after 'nivolumab'.*got 'mg'"),
    ("nivolumab", RegimenSyntaxError, r"missing dose after 'nivolumab'"),
    ("nivolumab 240 q2w", RegimenSyntaxError, r"missing unit after dose '240'"),
    ("nivolumab 3 mg/m2 q2w", InvalidDoseError, r"'mg/m2'"),
    ("nivolumab 3 g q2w", InvalidDoseError, r"unit .*'g' in item 1"),
    ("nivolumab 0 mg q2w", InvalidDoseError, r"'0' in item 1 of phase 1"),
    ("nivolumab -240 mg q2w", InvalidDoseError, r"'-240' in item 1"),
    ("nivolumab abc mg q2w", RegimenSyntaxError, r"non-numeric dose 'abc'"),
    ("nivolumab nan mg q2w", InvalidDoseError, r"finite.*'nan'"),
    ("nivolumab inf mg q2w", InvalidDoseError, r"finite.*'inf'"),
    ("nivolumab 240 mg", RegimenSyntaxError, r"missing interval in item 1 .*'nivolumab 240 mg'"),
    ("nivolumab 240 mg x4", InvalidDoseError, r"'x4' in item 1.*"),
    ("ipilimumab 3 mg/kg q3w x4 + nivolumab 1 mg/kg", RegimenSyntaxError,
     r"missing interval in item 2 of phase 1 \('nivolumab 1 mg/kg'\)"),
    ("nivolumab 240 mg q0w", InvalidDoseError, r"'q0w'"),
    ("nivolumab 240 mg q0.01d", InvalidDoseError, r"30-min infusion.*'q0.01d'"),
    ("nivolumab 240 mg qxw", RegimenSyntaxError, r"malformed interval 'qxw'"),
    ("nivolumab 240 mg q2w x0", InvalidDoseError, r"'x0'"),
    ("nivolumab 240 mg q2w x2.5", InvalidDoseError, r"whole number.*'x2.5'"),
    ("nivolumab 240 mg q2w xabc", RegimenSyntaxError, r"malformed dose count 'xabc'"),
    ("nivolumab 240 mg q2w q3w", RegimenSyntaxError, r"duplicate interval 'q3w'.*'q2w'"),
    ("nivolumab 240 mg q2w x2 once", RegimenSyntaxError, r"duplicate dose count 'once'"),
    ("nivolumab 240 mg q2w over 0 min", InvalidDoseError, r"'over 0 min'"),
    ("nivolumab 240 mg q2w over 1500 min", InvalidDoseError, r"1440.*'over 1500 min'"),
    ("nivolumab 240 mg q2w over 30", RegimenSyntaxError, r"'over 30'.*expected 'over N min'"),
    ("nivolumab 240 mg q2w, then ipilimumab 3 mg/kg q3w x4", RegimenError,
     r"phase 1 never ends: 'nivolumab 240 mg q2w'"),
    ("nivolumab 240 mg q2w x4, then , then ipilimumab 1 mg/kg q6w", RegimenSyntaxError,
     r"empty phase 2 at position \d+"),
    ("nivolumab 240 mg q2w x4, then", RegimenSyntaxError, r"empty phase 2"),
    ("nivolumab 240 mg q2w,", RegimenSyntaxError, r"after ',' at position 20, got nothing"),
    ("nivolumab 240 mg q2w, and then x", RegimenSyntaxError, r"got 'and'"),
    ("nivolumab 240 mg q2w +", RegimenSyntaxError, r"dangling '\+' at position 21"),
    ("+ nivolumab 240 mg q2w", RegimenSyntaxError, r"dangling '\+' at position 0"),
    ("nivolumab 240 mg q2w foo", RegimenSyntaxError, r"unexpected 'foo' at position 21"),
    ("nivolumab 240 mg q2w then nivolumab", RegimenSyntaxError, r"unexpected 'then'.*', then'"),
    ("nivolumab 240 mg q2w, stop at day -3", InvalidDoseError, r"'-3' in the stop clause"),
    ("nivolumab 240 mg q2w, stop at day nan", InvalidDoseError, r"'nan' in the stop clause"),
    ("nivolumab 240 mg q2w, stop at day soon", RegimenSyntaxError, r"non-numeric stop day 'soon'"),
    ("nivolumab 240 mg q2w, stop at 90", RegimenSyntaxError, r"malformed stop clause 'stop at 90'"),
    ("nivolumab 240 mg q2w x4, stop at day 30, then nivolumab 480 mg q4w", RegimenSyntaxError,
     r"'stop at day 30' must come last.*', then nivolumab 480 mg q4w'"),
    ("nivolumab 240 mg q2w from day -3", InvalidDoseError, r"'from day -3'"),
    ("nivolumab 240 mg q2w from 3", RegimenSyntaxError, r"'from 3'.*expected 'from day N'"),
    ("nivolumab 240 mg q2w + opdivo 3 mg/kg q2w", RegimenError,
     r"'nivolumab' appears more than once.*opdivo 3 mg/kg"),
    ("tremelimumab 300 mg x1, then durvalumab 1500 mg q4w", RegimenError,
     r"'tremelimumab 300 mg x1'.*only single doses"),
]


@pytest.mark.parametrize(("text", "exc", "pattern"), BAD, ids=[b[0] or "<empty>" for b in BAD])
def test_malformed_text(text, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        Regimen.parse(text)
    assert type(info.value) is exc
    assert isinstance(info.value, ValueError)


def test_error_hierarchy():
    for cls in (RegimenSyntaxError, UnknownAgentError, MissingWeightError, InvalidDoseError):
        assert issubclass(cls, RegimenError) and issubclass(cls, ValueError)
    with pytest.raises(TypeError):
        Regimen.parse(None)


# --- Python constructors -------------------------------------------------------------------

@pytest.mark.parametrize(("make", "exc", "pattern"), [
    (lambda: dose("nivolumb", 240, "mg", 14), UnknownAgentError, "did you mean 'nivolumab'"),
    (lambda: dose("nivolumab", 0, "mg", 14), InvalidDoseError, "amount"),
    (lambda: dose("nivolumab", float("nan"), "mg", 14), InvalidDoseError, "amount"),
    (lambda: dose("nivolumab", True, "mg", 14), InvalidDoseError, "amount"),
    (lambda: dose("nivolumab", "240", "mg", 14), InvalidDoseError, "amount.*'240'"),
    (lambda: dose("nivolumab", 240, "mg/m2", 14), InvalidDoseError, "'mg/m2'"),
    (lambda: dose("nivolumab", 240, "mg", 0.01), InvalidDoseError, "longer than the 30-min"),
    (lambda: dose("nivolumab", 240, "mg", 14, infusion_min=0), InvalidDoseError, "infusion"),
    (lambda: dose("nivolumab", 240, "mg", 14, infusion_min=2000), InvalidDoseError, "1440"),
    (lambda: dose("nivolumab", 240, "mg", 14, start_day=-1), InvalidDoseError, "start day"),
    (lambda: AgentDose("nivolumab", 240, "mg", "q2w"), InvalidDoseError, "Schedule"),
    (lambda: Schedule(14, 0), InvalidDoseError, "whole number"),
    (lambda: Schedule(14, 2.5), InvalidDoseError, "whole number"),
    (lambda: Schedule(-14, 2), InvalidDoseError, "interval"),
    (lambda: Schedule(math.inf, 2), InvalidDoseError, "interval"),
    (lambda: Schedule(None, 4), InvalidDoseError, "single dose"),
    (lambda: Schedule(None, None), InvalidDoseError, "single dose"),
    (lambda: Phase(()), RegimenError, "at least one dose"),
    (lambda: Phase(("nivolumab 240 mg q2w",)), RegimenError, "AgentDose"),
    (lambda: reg([dose("nivolumab", 240, "mg", 14), dose("Opdivo", 3, "mg/kg", 14)]),
     RegimenError, "more than once"),
    (lambda: Regimen(()), RegimenError, "one or more Phase"),
    (lambda: reg([dose("nivolumab", 240, "mg", 14)], [dose("nivolumab", 1, "mg", 14)]),
     RegimenError, "never ends"),
    (lambda: reg([dose("nivolumab", 240, "mg", 14)], stop_day=math.nan), InvalidDoseError,
     "stop day"),
])
def test_constructor_validation(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_constructor_normalisation():
    d = AgentDose("OPDIVO", 240, "MG", Schedule(14, None), infusion_min=30.0, start_day=-0.0)
    assert d == AgentDose("nivolumab", 240.0, "mg", Schedule(14.0, None))
    assert d.infusion_min is None and d.infusion_minutes == 30.0
    assert isinstance(d.amount, float) and str(d) == "nivolumab 240 mg q2w"
    assert AgentDose("ipilimumab", 1, "mg/kg", Schedule(42, 2), infusion_min=30).infusion_min == 30
    r = Regimen([Phase([d])])
    assert isinstance(r.phases, tuple) and isinstance(r.phases[0].doses, tuple)
    assert hash(r) == hash(Regimen.parse("nivolumab 240 mg q2w"))
    with pytest.raises(AttributeError):
        r.stop_day = 3


def test_weight_errors():
    r = Regimen.parse("nivolumab 240 mg q2w + ipilimumab 1 mg/kg q6w")
    with pytest.raises(MissingWeightError, match=r"weight_kg.*'ipilimumab 1 mg/kg q6w'"):
        r.infusions(days=10)
    for bad in (0, -70, math.nan, math.inf):
        with pytest.raises(InvalidDoseError, match="weight_kg"):
            r.infusions(days=10, weight_kg=bad)
    with pytest.raises(InvalidDoseError, match="days"):
        r.infusions(days=math.inf, weight_kg=70)
    flat = Regimen.parse("nivolumab 240 mg q2w")
    assert flat.infusions(days=15) == flat.infusions(days=15, weight_kg=70)


# --- round trip property -------------------------------------------------------------------

NAMES = sorted(AGENTS) + [a.brand for a in AGENTS.values()]
amounts = st.one_of(
    st.sampled_from([0.3, 0.5, 1, 2, 3, 10, 50, 200, 240, 300, 350, 480, 840, 1200, 1500]),
    st.floats(min_value=0.001, max_value=5000, allow_nan=False, allow_infinity=False),
    # values whose repr has an exponent (1e-07, 1.5e+20): printed as plain decimals
    st.floats(min_value=1e-9, max_value=1e-4), st.floats(min_value=1e16, max_value=1e22))
intervals = st.one_of(
    st.integers(1, 12).map(lambda w: 7.0 * w),
    st.integers(1, 90).map(float),
    st.floats(min_value=1.0, max_value=120.0))
infusion_mins = st.one_of(st.none(), st.sampled_from([15.0, 30, 60, 90, 120]),
                          st.floats(min_value=0.5, max_value=600))
start_days = st.one_of(st.just(0.0), st.sampled_from([1, 3.5, 7, 14]),
                       st.floats(min_value=0, max_value=60))


@st.composite
def phases(draw, last):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3,
                          unique_by=lambda n: get_agent(n).name))
    doses = []
    for k, name in enumerate(names):
        n = draw(st.integers(1, 12) | st.none()) if last else draw(st.integers(1, 12))
        single = n == 1 and (last or k > 0) and draw(st.booleans())
        sched = Schedule(None, 1) if single else Schedule(draw(intervals), n)
        start = 0.0 if single and not last else draw(start_days)
        doses.append(AgentDose(name, draw(amounts), draw(st.sampled_from(["mg", "mg/kg"])),
                               sched, draw(infusion_mins), start))
    return Phase(tuple(doses))


@st.composite
def regimens(draw):
    body = draw(st.lists(phases(last=False), max_size=3))
    stop = draw(st.none() | st.floats(min_value=0, max_value=2000) | st.integers(0, 2000))
    return Regimen((*body, draw(phases(last=True))), stop)


@settings(max_examples=200, deadline=None)
@given(regimens())
def test_round_trip_property(r):
    text = str(r)
    assert text == text.lower() and re.search(r"\.0(?!\d)", text) is None
    assert re.search(r"[0-9]e", text) is None  # plain decimals only: the parser reads no exponent
    again = Regimen.parse(text)
    assert again == r
    assert str(again) == text
    assert Regimen.parse(text.upper().replace(" ", "  ")) == r


def test_messages_quote_tokens():
    with pytest.raises(UnknownAgentError) as info:
        Regimen.parse("nivolumb 3 mg/kg q2w")
    msg = str(info.value)
    assert msg.startswith("unknown agent 'nivolumb' in item 1 of phase 1 "
                          "('nivolumb 3 mg/kg q2w'); known agents: nivolumab, ")
    assert msg.endswith("did you mean 'nivolumab'?")
    assert re.search(r"'x2\.5'", str(pytest.raises(
        InvalidDoseError, Regimen.parse, "nivolumab 3 mg/kg q2w x2.5").value))


# --- malformed number tokens (property) ----------------------------------------------------

TEMPLATE = "nivolumab {dose} mg q{interval}w x{count} over {minutes} min from day {start}, " \
           "then nivolumab 480 mg q4w, stop at day {stop}"
"""A regimen with every kind of number token; each slot gets a plain number unless broken."""
PLAIN = {"dose": "240", "interval": "2", "count": "4", "minutes": "30", "start": "3",
         "stop": "180"}
FOREIGN_DIGITS = ["\u0660", "\u06f0", "\u0966", "\uff10", "\u09e6"]  # the zero of 5 scripts


@st.composite
def malformed_numbers(draw) -> tuple[str, str]:
    """(token, text the message must quote): a number broken the ways Python's float() or
    a spreadsheet would still read it."""
    digits = draw(st.text("0123456789", min_size=1, max_size=4))
    frac = draw(st.text("0123456789", min_size=1, max_size=3))
    k = draw(st.integers(0, len(digits)))
    kind = draw(st.sampled_from(["underscore", "exponent", "foreign", "comma", "two_dots",
                                 "word", "suffix"]))
    if kind == "underscore":
        tok = f"{digits[:k]}_{digits[k:]}" if 0 < k < len(digits) else f"{digits}_0"
    elif kind == "exponent":
        tok = f"{digits}{draw(st.sampled_from(['e', 'E']))}{draw(st.sampled_from(['', '-']))}3"
    elif kind == "foreign":
        zero = ord(draw(st.sampled_from(FOREIGN_DIGITS)))
        tok = "".join(chr(zero + int(c)) for c in digits)
    elif kind == "comma":
        return f"{digits},{frac}", f"'{digits},{frac}'"
    elif kind == "two_dots":
        tok = f"{digits}.{frac}.{frac}"
    elif kind == "word":
        tok = draw(st.sampled_from(["abc", "ten", "?", "0x10", "1/2", "½", "²"]))
    else:
        tok = digits + draw(st.sampled_from(["mg", "%", "k", "x"]))
    return tok, tok


@settings(max_examples=150, deadline=None)
@given(slot=st.sampled_from(sorted(PLAIN)), bad=malformed_numbers())
def test_malformed_number_tokens_raise_regimen_error(slot, bad):
    """Any malformed number in any slot raises a RegimenError that quotes it, never another
    exception and never a regimen (``2_40`` is not 240, ``٣`` is not 3)."""
    token, quoted = bad
    text = TEMPLATE.format(**(PLAIN | {slot: token}))
    with pytest.raises(RegimenError) as info:
        Regimen.parse(text)
    assert quoted.strip("'") in str(info.value), (text, str(info.value))
    assert Regimen.parse(TEMPLATE.format(**PLAIN))  # the unbroken template parses


@settings(max_examples=150, deadline=None)
@given(r=regimens(), data=st.data())
def test_mutated_text_parses_or_raises_regimen_error(r, data):
    """Canonical text with a character inserted, deleted or replaced either parses (to a
    regimen whose text parses back to it) or raises a RegimenError: never another exception."""
    text = str(r)
    i = data.draw(st.integers(0, len(text)))
    ch = data.draw(st.characters(codec="utf-8") | st.sampled_from(list(",+._-e x0123456789")))
    how = data.draw(st.sampled_from(["insert", "delete", "replace"]))
    mutated = {"insert": text[:i] + ch + text[i:], "delete": text[:i] + text[i + 1:],
               "replace": text[:i] + ch + text[i + 1:]}[how]
    try:
        got = Regimen.parse(mutated)
    except RegimenError:
        return
    assert Regimen.parse(str(got)) == got


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_raises_regimen_error(text):
    try:
        Regimen.parse(text)
    except RegimenError:
        pass
