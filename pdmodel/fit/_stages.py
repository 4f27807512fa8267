"""Checkpointed stages of ``pdmodel fit``: resume a stage from its checkpoint, or compute it and
checkpoint it — the one place that idiom lives.

A :class:`Stage` names its checkpoint (``checkpoints/<name>.npz`` + ``<name>.json`` of the
:class:`RunFolder`) and says how its value becomes numeric arrays (plus JSON metadata) and back.
:func:`run_stage` returns the value rebuilt from those arrays whether it was just computed or
loaded, so a resumed run continues from exactly what a fresh run would hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from ._run_folder import RunFolder


def no_meta(value: Any, seconds: float) -> dict:
    """Checkpoint metadata of a stage that stores none."""
    return {}


def elapsed_meta(value: Any, seconds: float) -> dict:
    """Checkpoint metadata ``{"seconds": wall time of compute}``."""
    return {"seconds": seconds}


class Stage(NamedTuple):
    """One checkpointed step of a fit.

    Attributes
    ----------
    name : str
        Checkpoint name (letters, digits, ``_ . -``), e.g. ``"map"``, ``"nuts_refined1"``.
    compute : callable () -> value
        Does the work (progress bars and log lines included).
    to_arrays : callable (value) -> dict of str -> array
        The numeric arrays the checkpoint stores.
    from_arrays : callable (arrays, meta) -> value
        The value back from the stored arrays and metadata.
    meta : callable (value, seconds) -> dict
        JSON-serialisable metadata stored with the arrays; ``seconds`` is the wall time of
        ``compute`` (default: none).
    """

    name: str
    compute: Callable[[], Any]
    to_arrays: Callable[[Any], Mapping[str, Any]]
    from_arrays: Callable[[Mapping[str, np.ndarray], Mapping[str, Any]], Any]
    meta: Callable[[Any, float], Mapping[str, Any]] = no_meta


def run_stage(run: RunFolder, stage: Stage, resume: bool) -> Any:
    """The value of ``stage``: from its checkpoint in ``run`` when ``resume`` and a valid one
    exists, else computed and checkpointed (arrays, then metadata)."""
    saved = run.load_checkpoint(stage.name) if resume else None
    if saved is not None:
        return stage.from_arrays(*saved)
    t0 = time.perf_counter()
    value = stage.compute()
    seconds = time.perf_counter() - t0
    arrays = {k: np.asarray(v) for k, v in stage.to_arrays(value).items()}
    meta = dict(stage.meta(value, seconds))
    run.save_checkpoint(stage.name, arrays, meta)
    return stage.from_arrays(arrays, meta)
