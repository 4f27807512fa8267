"""pdmodel's vocabulary, defined once: the longest horizon, agents and targets, organs, grades,
tumours, settings, endpoints and terms.

Every array axis of the model is indexed in the order of one of these tuples, and every count
is taken from ``len(...)`` of one of them. The agent catalogue (target, class, label infusion
time) lives here too; infusion durations are the label (or label-summary) values, each with its
source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_DAYS: int = 3653
"""Longest simulated horizon (days from the first dose): ten years, past any published
follow-up of an irAE; longer horizons are refused (``pdmodel predict --weeks`` <= 521.8)."""

TARGETS: tuple[str, ...] = ("PD-1", "PD-L1", "CTLA-4")
"""Checkpoint targets, in the order used for occupancy arrays."""

CLASSES: dict[str, str] = {"PD-1": "anti-PD-1", "PD-L1": "anti-PD-L1", "CTLA-4": "anti-CTLA-4"}
"""Drug class of each target."""

ORGANS: tuple[str, ...] = ("skin", "gi", "liver", "lung", "thyroid", "pituitary")
"""Organs modelled, in array order (canonical names)."""

ORGAN_CHOICES: tuple[str, ...] = ("any", *ORGANS)
"""Organs an incidence can be asked for or reported by: ``any`` (any organ) plus :data:`ORGANS`,
in the order of the incidence arrays' organ axis."""

GRADES: tuple[str, ...] = ("any", "2+", "3+")
"""Grade levels (CTCAE grade >= 1, >= 2, >= 3), in array order."""

TUMOURS: tuple[str, ...] = ("melanoma", "nsclc", "rcc", "other")
"""Tumour types with their own organ-susceptibility factors."""

ENDPOINTS: tuple[str, ...] = (
    "treatment_related", "immune_related", "immune_mediated", "select", "all_cause")
"""Reporting definitions (attribution) of incidence data a fit can use, in array order
(shared/data README; shared/data also has ``fatal``)."""

TERMS: tuple[str, ...] = ("rash", "pruritus", "diarrhea", "colitis", "hepatitis", "pneumonitis",
                          "hypothyroidism", "hyperthyroidism", "hypophysitis")
"""Specific terms reported as a fraction of their organ's events, in array order."""

CONTROL_AGENTS: tuple[str, ...] = (
    "placebo", "trastuzumab", "bevacizumab", "cetuximab", "sorafenib", "cabozantinib",
    "chemotherapy", "vaccine")
"""Non-checkpoint-inhibitor arm components accepted in a data row's ``agents`` (placebo, the
backbone treatments of :data:`BACKBONES`, bevacizumab and cabozantinib), in the order they are
joined in a backbone name."""

BACKBONES: tuple[str, ...] = (
    "chemotherapy", "trastuzumab+chemotherapy", "cetuximab+chemotherapy", "sorafenib", "vaccine")
"""Non-checkpoint-inhibitor treatments an arm gives besides (or, in a control arm, instead of)
a checkpoint inhibitor, whose organ events the fit models as a background of their own, fitted
to the control arms that give them (docs/model.md §5.3), in array order. An arm's backbone is
its non-placebo :data:`CONTROL_AGENTS` joined by ``+`` in that order; ``vaccine`` is the gp100
peptide vaccine. Bevacizumab and cabozantinib have no control arm in the data and are not
modelled (their arms are left out of the default fit)."""

SETTINGS: tuple[str, ...] = ("metastatic", "adjuvant", "pooled", "mixed")
"""Treatment settings (shared/data vocabulary; neoadjuvant and perioperative arms are coded
``mixed`` there, and :data:`SETTING_DETAILS` tells them apart)."""

SETTING_LEVELS: tuple[str, ...] = ("metastatic", "early")
"""Disease settings the model distinguishes (``setting_effect``), in array order: ``metastatic``
(the reference level: advanced or metastatic disease, and pooled or mixed populations) and
``early`` (resectable disease: adjuvant, neoadjuvant and perioperative treatment)."""

EARLY_SETTINGS: frozenset[str] = frozenset({"adjuvant", "neoadjuvant", "perioperative"})
"""Values of :data:`SETTING_DETAILS` that are the ``early`` level of :data:`SETTING_LEVELS`."""


def setting_level(setting: str) -> str:
    """The :data:`SETTING_LEVELS` level of a setting (``adjuvant`` → ``early``)."""
    return "early" if setting in EARLY_SETTINGS else "metastatic"


SETTING_DETAILS: tuple[str, ...] = (
    "metastatic", "adjuvant", "neoadjuvant", "perioperative", "pooled", "mixed")
"""Treatment settings with the neoadjuvant and perioperative arms of ``mixed`` named
(bundled column ``setting_model``)."""


@dataclass(frozen=True)
class Agent:
    """An immune checkpoint inhibitor.

    Attributes
    ----------
    name : str
        International nonproprietary name, lower case (e.g. ``"nivolumab"``).
    brand : str
        Trade name.
    target : str
        One of :data:`TARGETS`.
    infusion_min : float
        Label intravenous infusion duration, minutes.
    infusion_source : str
        Where the infusion duration is printed.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> a = pdm.AGENTS["ipilimumab"]
    >>> a.brand, a.target, a.drug_class, a.infusion_min
    ('Yervoy', 'CTLA-4', 'anti-CTLA-4', 90.0)
    """

    name: str
    brand: str
    target: str
    infusion_min: float
    infusion_source: str

    @property
    def drug_class(self) -> str:
        """Class label: ``anti-PD-1``, ``anti-PD-L1`` or ``anti-CTLA-4``."""
        return CLASSES[self.target]


AGENTS: dict[str, Agent] = {
    a.name: a
    for a in (
        Agent("nivolumab", "Opdivo", "PD-1", 30.0,
              "PDR Opdivo drug summary (shared/data pk_parameters pkp-0300)"),
        Agent("pembrolizumab", "Keytruda", "PD-1", 30.0,
              "KEYTRUDA USPI section 2 (30-minute infusion)"),
        Agent("cemiplimab", "Libtayo", "PD-1", 30.0,
              "Yang 2021 / ACoP 2024 abstract (pkp-0305)"),
        Agent("atezolizumab", "Tecentriq", "PD-L1", 60.0,
              "TECENTRIQ USPI section 2 (first infusion over 60 minutes)"),
        Agent("durvalumab", "Imfinzi", "PD-L1", 60.0,
              "Drugs.com durvalumab dosage (pkp-0303)"),
        Agent("avelumab", "Bavencio", "PD-L1", 60.0,
              "PDR Bavencio drug summary (pkp-0302)"),
        Agent("ipilimumab", "Yervoy", "CTLA-4", 90.0,
              "Trinh & Hagen J Oncol Pharm Pract 2013 (pkp-0299)"),
        Agent("tremelimumab", "Imjudo", "CTLA-4", 60.0,
              "IMJUDO USPI section 2 (60-minute infusion)"),
    )
}
"""All eight approved checkpoint inhibitors, keyed by lower-case name."""

_BRANDS = {a.brand.lower(): a.name for a in AGENTS.values()}


def get_agent(name: str) -> Agent:
    """Look up an agent by INN or brand name (case-insensitive).

    Parameters
    ----------
    name : str
        International nonproprietary name or trade name, any case, e.g. ``"Keytruda"``.

    Returns
    -------
    Agent
        The agent's catalogue entry.

    Raises
    ------
    KeyError
        If the name is not a known checkpoint inhibitor; the message lists the known agents.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> pdm.get_agent("Keytruda").name
    'pembrolizumab'
    >>> pdm.get_agent(" NIVOLUMAB ").target
    'PD-1'
    """
    key = name.strip().lower()
    key = _BRANDS.get(key, key)
    try:
        return AGENTS[key]
    except KeyError:
        known = ", ".join(AGENTS)
        raise KeyError(f"unknown agent {name!r}; known agents: {known}") from None


def check_choices(organs: Sequence[str], grades: Sequence[str]) -> None:
    """Raise ``ValueError`` naming any organ or grade pdmodel does not model."""
    for o in organs:
        if o not in ORGAN_CHOICES:
            raise ValueError(f"unknown organ {o!r}; expected one of {ORGAN_CHOICES}")
    for g in grades:
        if g not in GRADES:
            raise ValueError(f"unknown grade {g!r}; expected one of {GRADES}")


ASSUMED_REGIMENS: dict[tuple[str, str | None], str] = {
    # (agents_model, backbone or None for any) -> regimen assumed where the dose is not printed.
    # A person's choice among the regimens the bundled data print for these agents (the build
    # checks each is printed for at least one study and names them in `regimen_basis`): the
    # open-ended (metastatic) schedule, not a fixed adjuvant course.
    ("nivolumab", None): "nivolumab 3 mg/kg q2w",
    ("pembrolizumab", None): "pembrolizumab 200 mg q3w",
    ("ipilimumab", None): "ipilimumab 3 mg/kg q3w x4",
    ("nivolumab;ipilimumab", None):
        "nivolumab 1 mg/kg q3w x4 + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w",
    ("atezolizumab", None): "atezolizumab 1200 mg q3w",
    ("avelumab", None): "avelumab 10 mg/kg q2w",
    ("cemiplimab", None): "cemiplimab 350 mg q3w",
    ("durvalumab", None): "durvalumab 1500 mg q4w",
    ("durvalumab", "chemotherapy"): "durvalumab 1500 mg q3w x4, then durvalumab 1500 mg q4w",
    ("tremelimumab", None): "tremelimumab 10 mg/kg q4w x7, then tremelimumab 10 mg/kg q12w",
    ("tremelimumab;durvalumab", None): "tremelimumab 300 mg x1 + durvalumab 1500 mg q4w",
}
"""Regimen simulated for an arm whose source prints no dose (an assumption, stated per row in
the bundled ``regimen_basis``), keyed by ``(agents_model, backbone)``, where a ``None`` backbone
means any backbone without an entry of its own."""
