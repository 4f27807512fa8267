"""Every domain error pdmodel raises, under one base class :class:`PdmodelError`.

Each error is also the builtin exception its kind suggests (a bad regimen, config, file or data
row is a ``ValueError``; a run folder that cannot be used is a ``RuntimeError``), so code that
catches those keeps working. Messages name what is wrong and where (row, field, token, key).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PdmodelError",
    "RegimenError", "RegimenSyntaxError", "UnknownAgentError", "MissingWeightError",
    "InvalidDoseError",
    "ConfigError", "SaveFormatError", "FitLoadError",
    "RunFolderError", "RunLockedError", "RunConfigMismatchError", "DistributedError",
    "DesignError", "DesignInfeasibleError",
    "DataIssue", "DataError", "DataFileError", "format_issues",
    "ResultsIntegrityError", "ParameterError", "SimulationError", "ConfigWarning",
    "EXIT_OK", "EXIT_INVALID_DATA", "EXIT_USAGE", "EXIT_RUNTIME", "EXIT_CLOSED_OUTPUT",
    "exit_code",
]

#: Exit codes of the ``pdmodel`` command line (README, "Exit codes").
EXIT_OK = 0
#: Invalid data: a data file (CSV) with problems; every problem is listed.
EXIT_INVALID_DATA = 1
#: Usage error: an option, config key, regimen, parameter or specification that cannot be used.
EXIT_USAGE = 2
#: Runtime failure: a run folder or result that cannot be used (corrupt, locked, from another
#: run), a solver failure, a failed process of a multi-process run, an unexpected error.
EXIT_RUNTIME = 3
#: The reader of the output went away (``pdmodel predict ... | head``): the command stops
#: quietly, with the code of Unix tools ended by SIGPIPE (128 + 13).
EXIT_CLOSED_OUTPUT = 141


class PdmodelError(Exception):
    """Base class of every error pdmodel raises about its input or its files.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> try:
    ...     pdm.Regimen.parse("aspirin 100 mg q1d")
    ... except pdm.PdmodelError as err:
    ...     print(type(err).__name__)
    UnknownAgentError
    """


class RegimenError(PdmodelError, ValueError):
    """Invalid regimen (a ``ValueError``); base class of the regimen errors below.

    Attributes
    ----------
    field : str or None
        The offending attribute (``"agent"``, ``"amount"``, ``"weight_kg"``, ...), when there
        is one.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> try:
    ...     pdm.Regimen.parse("nivolumab 240 mg q2w, then ipilimumab 3 mg/kg q3w x4")
    ... except pdm.RegimenError as err:
    ...     print(err.field)
    phases
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class RegimenSyntaxError(RegimenError):
    """Regimen text that does not follow the grammar; the message quotes the token.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> try:
    ...     pdm.Regimen.parse("nivolumab 240 mg q2w x")
    ... except pdm.RegimenSyntaxError as err:
    ...     print(str(err).split(";")[0])
    malformed dose count 'x' in item 1 of phase 1 ('nivolumab 240 mg q2w x')
    """


class UnknownAgentError(RegimenError):
    """Agent name that is not a known checkpoint inhibitor; the message lists the known ones.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> try:
    ...     pdm.Regimen.parse("aspirin 100 mg q1d")
    ... except pdm.UnknownAgentError as err:
    ...     print(err.field)
    agent
    """


class MissingWeightError(RegimenError):
    """A mg/kg dose needs a body weight, and none was given.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> reg = pdm.Regimen.parse("nivolumab 3 mg/kg q2w")
    >>> try:
    ...     reg.infusions(days=28)
    ... except pdm.MissingWeightError as err:
    ...     print(err)
    weight_kg is required: 'nivolumab 3 mg/kg q2w' doses nivolumab in mg/kg
    """


class InvalidDoseError(RegimenError):
    """Dose, unit, schedule, infusion time, day or body weight out of range.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> try:
    ...     pdm.Regimen.parse("nivolumab -3 mg q2w")
    ... except pdm.InvalidDoseError as err:
    ...     print(err.field)
    amount
    """


class ConfigError(PdmodelError, ValueError):
    """A configuration that cannot be used; the message lists every problem, one a line.

    Attributes
    ----------
    source : str
        The file (or ``"command-line override"``) the problems were found in.
    problems : list of str
        One message per problem, each naming the dotted key.
    """

    def __init__(self, source: str | os.PathLike, problems: Iterable[str]):
        self.source = str(source)
        self.problems = list(problems)
        super().__init__("\n".join(f"{self.source}: {p}" for p in self.problems))


class SaveFormatError(PdmodelError, ValueError):
    """A file that :func:`pdmodel.load` cannot read: not a pdmodel file, another kind, a newer
    format version, corrupt or truncated, or with missing fields or wrong shapes.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    problem : str
        What is wrong with it (the message without the file name).

    Examples
    --------
    >>> import os, tempfile
    >>> import pdmodel as pdm
    >>> path = os.path.join(tempfile.mkdtemp(), "model.json")
    >>> with open(path, "w") as f:
    ...     _ = f.write('{"format": "pdmodel", "kind": "IraeModel", "vers')
    >>> try:
    ...     pdm.load(path)
    ... except pdm.SaveFormatError as err:
    ...     print(err.path.name, "-", err.problem.split(" (")[0])
    model.json - truncated or corrupt JSON
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class FitLoadError(PdmodelError, ValueError):
    """A run folder that cannot be read as a fit (missing, corrupt or from another version).

    A ``ValueError``; the message names the folder or file and what to do.

    Examples
    --------
    >>> import tempfile
    >>> import pdmodel as pdm
    >>> try:
    ...     pdm.load_fit(tempfile.mkdtemp())
    ... except pdm.FitLoadError as err:
    ...     print("config.toml missing" in str(err))
    True
    """


class ResultsIntegrityError(FitLoadError):
    """A fit's published ``results/`` do not match their manifest (a file changed, missing or
    added after publishing); the message names the file. A :class:`FitLoadError`.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> issubclass(pdm.ResultsIntegrityError, pdm.FitLoadError)
    True
    >>> pdm.errors.exit_code(pdm.ResultsIntegrityError("results/posterior.nc changed"))
    3
    """


class RunFolderError(PdmodelError, RuntimeError):
    """A run folder cannot be used as asked (message says why and what to do)."""


class RunLockedError(RunFolderError):
    """Another live process holds the run folder's lock."""


class DistributedError(PdmodelError, RuntimeError):
    """A multi-process run (``jax.distributed``) cannot go on: a process failed or did not
    reach a barrier in time, or the processes disagree (settings, files); nothing is written."""


class RunConfigMismatchError(RunFolderError):
    """The run folder holds results or checkpoints of a different configuration.

    Attributes
    ----------
    keys : list of str
        Dotted config keys that differ.
    """

    def __init__(self, message: str, keys: list[str]):
        super().__init__(message)
        self.keys = keys


class DesignError(PdmodelError, ValueError):
    """A regimen-design specification that cannot be used (:func:`pdmodel.design`).

    Attributes
    ----------
    field : str or None
        The offending part of the specification (a variable name such as ``"dose"``,
        ``"template"``, ``"constraints[0]"``, ``"risk.organ"``, ...).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> try:
    ...     pdm.design("nivolumab {dose} q2w", {"dose": "10-1 mg/kg"})
    ... except pdm.DesignError as err:
    ...     print(err.field)
    dose
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message if field is None else f"{field}: {message}")
        self.field = field


class DesignInfeasibleError(DesignError):
    """No regimen of the design space meets the constraints; the message names each
    constraint and the best level any regimen of the space reaches.

    A :class:`DesignError` (so a ``ValueError``) with ``field`` ``"constraints"``; raised by
    :func:`pdmodel.design` (:func:`pdmodel.trade_off` keeps such levels as infeasible rows).
    Widen the ranges of the variables or relax a level.

    Examples
    --------
    Every dose of 1-2 mg/kg every 6-8 weeks leaves the PD-1 trough below 99.9 %:

    >>> import pdmodel as pdm
    >>> try:
    ...     pdm.design("nivolumab {dose} q{interval}w",
    ...                {"dose": "1-2 mg/kg step 1", "interval": "6-8 weeks"},
    ...                constraints=["trough PD-1 >= 0.999 weeks 8-26"],
    ...                risk=pdm.Risk(week=8), draws=2, patients=2, starts=1, steps=3)
    ... except pdm.DesignInfeasibleError as err:
    ...     print(err.field)
    ...     print(err)
    constraints
    constraints: no regimen of the design space meets the constraints:
    constraints[0] 'trough PD-1 ...': best in the space 0.97... (nivolumab 2 mg/kg q6w)
    widen the ranges or relax a level
    """


@dataclass(frozen=True)
class DataIssue:
    """One problem in a data table.

    ``row`` is the spreadsheet line (header = line 1, first data row = line 2); 0 for problems
    of the header itself (e.g. a missing column).
    """

    row: int
    row_id: str
    field: str
    value: str
    message: str

    def __str__(self) -> str:
        where = "line 1 (header)" if self.row == 0 else f"line {self.row} (row_id {self.row_id})"
        return f"{where}, field '{self.field}': {self.message}"


class DataError(PdmodelError, ValueError):
    """Invalid data; ``issues`` lists every problem found."""

    def __init__(self, message: str, issues: list[DataIssue] | None = None):
        super().__init__(message)
        self.issues = list(issues or [])


class DataFileError(DataError):
    """A file that cannot be read as CSV text at all (missing, binary, not CSV)."""


class ParameterError(PdmodelError, ValueError):
    """A model parameter, covariate or population value out of its allowed range (negative
    rate, fraction outside [0, 1], non-finite value, empty population).

    Attributes
    ----------
    field : str or None
        The parameter or covariate (``"IraeModel.g_pd1"``, ``"Population.weight_kg"``, ...).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> try:
    ...     pdm.IraeModel(k_e=-5.0)
    ... except pdm.ParameterError as err:
    ...     print(err.field)
    IraeModel.k_e
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message if field is None else f"{field}: {message}")
        self.field = field


class SimulationError(PdmodelError, RuntimeError):
    """A simulation that did not give a finite answer (solver failure or non-finite state); the
    message names the regimen, patient or parameter and the day.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> isinstance(pdm.SimulationError("incidence is not finite from day 12"), RuntimeError)
    True
    """


class ConfigWarning(UserWarning):
    """A configuration key, option or value that is legal but unusual (a 300 kg patient,
    200,000 virtual patients); the message names the key or option and the usual range.

    Examples
    --------
    >>> import warnings
    >>> import pdmodel as pdm
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("model.patients = 200000 is above 100000", pdm.ConfigWarning)
    >>> caught[0].category.__name__
    'ConfigWarning'
    """


def exit_code(err: BaseException) -> int:
    """The command-line exit code of an error (see ``EXIT_*``)."""
    if isinstance(err, DataError):
        return EXIT_INVALID_DATA
    if isinstance(err, (FitLoadError, RunFolderError, DistributedError, SimulationError)):
        return EXIT_RUNTIME
    if isinstance(err, (PdmodelError, ValueError)):
        return EXIT_USAGE
    return EXIT_RUNTIME


def format_issues(issues: list[DataIssue], name: str = "data") -> str:
    """All issues, one per line, under a one-line heading."""
    head = f"{name}: {len(issues)} problem{'s' if len(issues) != 1 else ''}"
    return "\n".join([head, *(str(i) for i in issues)])
