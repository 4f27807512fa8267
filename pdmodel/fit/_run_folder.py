"""The run folder of ``pdmodel fit``: a PID lock, checkpoints, versioned and verified results.

A run folder holds::

    config.toml      resolved configuration (pdmodel.fit._config.dump_config)
    versions.json    Python, platform and package versions
    seed.txt         the seed
    .lock            PID (and host) of the process running the fit
    checkpoints/     <stage>.npz + <stage>.json per finished stage (resumable)
    results          symbolic link to the published version, e.g. results.d/000003
    results.d/       published versions: the current one and the one before it
        000003/      every result file and MANIFEST.json (SHA-256 and size of each file,
                     and of config.toml)

Every file is written to a temporary name in its folder, fsynced and renamed, so a killed run
leaves either the old or the new file. A publish writes a complete new version next to the
current one (``results.d/.tmp-<random>``, renamed to its number once complete) and then flips
the ``results`` link with one rename, so ``results/`` is at every moment a complete version;
the version before stays until the next publish. Leftovers of an interrupted publish are
removed the next time the folder is locked. :func:`verify_results` checks a published version
against its manifest (``load_fit`` calls it).

A ``results/`` that is a real folder (published by pdmodel before versioned results, or a fit
folder copied with links followed) is read as it is; the next publish moves it into
``results.d/`` and puts the link in its place: between these two renames (microseconds)
``results`` does not exist, and :func:`verify_results` then reads the newest complete version.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import (
    ConfigError,
    FitLoadError,
    ResultsIntegrityError,
    RunConfigMismatchError,
    RunFolderError,
    RunLockedError,
)
from ..io import (
    FileContent,
    atomic_write_bytes,
    atomic_write_text,
    fsync_dir,
    versions_info,
    write_new_file,
)
from ._config import FitConfig, config_diff, config_hash, dump_config, load_config

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

# --------------------------------------------------------------------------- lock helpers


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _parse_lock(text: str) -> tuple[int | None, str | None]:
    lines = text.split()
    pid = int(lines[0]) if lines and lines[0].isdigit() else None
    host = lines[1] if len(lines) > 1 else None
    return pid, host


_STAGE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_RESERVED_META = ("stage", "complete", "config_hash", "npz_sha256", "arrays", "saved_at")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


# --------------------------------------------------------------------------- manifest

RESULTS = "results"
"""The published results of a run folder: a link to a version in :data:`VERSIONS_DIR`."""

VERSIONS_DIR = "results.d"
"""Folder of the published versions (``000001``, ``000002``, ...) of a run folder."""

MANIFEST = "MANIFEST.json"
"""The manifest of a published version: SHA-256 and size of each of its files."""

MANIFEST_FORMAT = "pdmodel results manifest"
MANIFEST_VERSION = 1

_SHA256 = r"^[0-9a-f]{64}$"


class ManifestEntry(BaseModel):
    """SHA-256 (hex) and size (bytes) of one published file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: Annotated[str, Field(pattern=_SHA256)]
    size: Annotated[int, Field(ge=0, strict=True)]


class Manifest(BaseModel):
    """``MANIFEST.json`` of a published version.

    ``files``: every file of the version by relative POSIX path (the manifest aside);
    ``run_files``: files of the run folder the results depend on (``config.toml``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["pdmodel results manifest"]
    format_version: Literal[1]
    published_at: str
    files: dict[str, ManifestEntry]
    run_files: dict[str, ManifestEntry] = Field(default_factory=dict)

    @field_validator("files", "run_files")
    @classmethod
    def _relative_paths(cls, v: dict[str, ManifestEntry]) -> dict[str, ManifestEntry]:
        for name in v:
            rel = PurePosixPath(name)
            if (not name or rel.is_absolute() or ".." in rel.parts or "\\" in name
                    or rel.as_posix() != name or name == MANIFEST):
                raise ValueError(f"{name!r} is not a file name inside the folder")
        return v


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _entry(path: Path) -> ManifestEntry:
    return ManifestEntry(sha256=file_sha256(path), size=path.stat().st_size)


def visible_files(folder: Path) -> list[str]:
    """Relative POSIX paths of the files under ``folder``, hidden ones (``.name``) and the
    manifest aside."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out.append(rel.as_posix())
    return sorted(n for n in out if n != MANIFEST)


def build_manifest(folder: Path, names: Iterable[str] | None = None,
                   config_path: Path | None = None) -> Manifest:
    """The manifest of the files ``names`` of ``folder`` (default: every visible file) and of
    ``config_path`` (the run's ``config.toml``, when given and present), hashed as on disk."""
    names = visible_files(folder) if names is None else sorted(names)
    run_files = ({config_path.name: _entry(config_path)}
                 if config_path is not None and config_path.is_file() else {})
    return Manifest(format=MANIFEST_FORMAT, format_version=MANIFEST_VERSION,
                    published_at=datetime.datetime.now(datetime.UTC).isoformat(
                        timespec="seconds"),
                    files={n: _entry(folder / n) for n in names}, run_files=run_files)


def manifest_json(manifest: Manifest) -> str:
    """The text of ``MANIFEST.json``."""
    return json.dumps(manifest.model_dump(), indent=2) + "\n"


def write_manifest(folder: str | os.PathLike, config_path: str | os.PathLike | None = None
                   ) -> Path:
    """Write ``folder/MANIFEST.json`` (atomically) for the files of ``folder`` as they are now.

    For results published before manifests existed, such as a committed reference fit
    (``write_manifest("fits/reference/results", "fits/reference/config.toml")``): the files are
    trusted as they are. :meth:`RunFolder.publish` writes the manifest of every new version.
    """
    folder = Path(folder)
    cfg = Path(config_path) if config_path is not None else None
    return atomic_write_text(folder / MANIFEST, manifest_json(build_manifest(folder, None, cfg)))


def _restore(run: Path) -> str:
    """What to do about damaged published results of ``run``."""
    return ("restore the fit folder from a copy, or run the fit again in it (reuses its "
            f"checkpoints, if any): pdmodel fit {run / 'config.toml'} --set "
            f"output.folder={run} --resume")


def read_manifest(folder: Path, shown: Path | None = None, remedy: str = "") -> Manifest | None:
    """``folder/MANIFEST.json``, or None when there is none.

    ``shown``: the folder as messages name it (default ``folder``); ``remedy``: what to do,
    added to messages.

    Raises
    ------
    ResultsIntegrityError
        Not UTF-8 JSON, not a manifest, written by a newer pdmodel, or with invalid entries;
        the message names the file and the key.
    """
    path, shown = folder / MANIFEST, (shown or folder) / MANIFEST
    remedy = f"; {remedy}" if remedy else ""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ResultsIntegrityError(f"cannot read {shown}: {err.strerror}") from err
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ResultsIntegrityError(f"{shown} is not UTF-8 text (byte {err.start}: corrupt "
                                    f"manifest){remedy}") from None
    except json.JSONDecodeError as err:
        raise ResultsIntegrityError(f"{shown} is not valid JSON ({err.msg} at line "
                                    f"{err.lineno} column {err.colno}: truncated or corrupt "
                                    f"manifest){remedy}") from None
    if isinstance(data, dict):
        v = data.get("format_version")
        if isinstance(v, int) and not isinstance(v, bool) and v > MANIFEST_VERSION:
            raise ResultsIntegrityError(
                f"{shown} has format_version {v}, written by a newer pdmodel (this one reads "
                f"version {MANIFEST_VERSION}); upgrade pdmodel")
    try:
        return Manifest.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'top level'}: {e['msg']}"
            for e in err.errors()[:5])
        raise ResultsIntegrityError(f"{shown} is not a valid results manifest "
                                    f"({problems}){remedy}") from None


class PublishedResults(NamedTuple):
    """A run folder's published results, as :func:`verify_results` found them."""

    folder: Path  # the version read (results.d/<n>, or results/ itself when a real folder)
    manifest: Manifest | None  # None: published before manifests (files not verified)


def _numbered(store: Path) -> list[Path]:
    """Complete versions in ``store`` (folders named by number), oldest first."""
    try:
        found = [p for p in store.iterdir() if p.name.isdigit() and p.is_dir()]
    except OSError:
        return []
    return sorted(found, key=lambda p: int(p.name))


def published_folder(run: str | os.PathLike) -> tuple[Path, bool] | None:
    """``(folder, versioned)`` of ``run``'s published results, or None when there are none.

    ``results`` a link: its target, resolved (``versioned``); a real folder: itself;
    absent: the newest complete version in ``results.d`` (a publish that moved an old real
    folder aside and has not yet put the link in its place).

    Raises
    ------
    ResultsIntegrityError
        ``results`` is a link to nothing, or not a folder.
    """
    run = Path(run)
    res = run / RESULTS
    if res.is_symlink():
        if res.is_dir():
            return res.resolve(), True  # this version, even if the link flips meanwhile
        raise ResultsIntegrityError(
            f"{res} is a link to {os.readlink(res)}, which does not exist (published results "
            f"removed, or fit folder copied without {VERSIONS_DIR}/); {_restore(run)}")
    if res.is_dir():
        return res, False
    if res.exists():
        raise ResultsIntegrityError(f"{res} is not a folder (a fit publishes its results in "
                                    f"{RESULTS}/); {_restore(run)}")
    versions = _numbered(run / VERSIONS_DIR)
    return (versions[-1], True) if versions else None


def verify_results(run: str | os.PathLike) -> PublishedResults:
    """Check ``run``'s published results against their manifest; returns the version read.

    Every file the manifest lists must exist with its size and SHA-256, no other visible file
    (name not starting with ``.``) may be in the folder, and the run's ``config.toml`` must be
    the one the results were published with. Results without a manifest in a real
    ``results/`` folder (published before pdmodel wrote manifests) are read with a
    ``UserWarning``; in a versioned folder they are an error.

    Raises
    ------
    FitLoadError
        ``run`` has no published results.
    ResultsIntegrityError
        A file missing, changed, truncated or added, ``config.toml`` changed, the manifest
        missing or corrupt, ``results`` a broken link; the message names the file and what
        to do.
    """
    run = Path(run)
    found = published_folder(run)
    if found is None:
        raise FitLoadError(f"{run} is not a fit: {RESULTS}/ missing ({run / RESULTS}); run "
                           "'pdmodel fit' or use fits/reference")
    folder, versioned = found
    shown = run / RESULTS if (run / RESULTS).is_dir() else folder  # the path users know
    listed = shown / MANIFEST
    manifest = read_manifest(folder, shown, _restore(run))
    if manifest is None:
        if versioned:
            raise ResultsIntegrityError(f"{listed} is missing: the published results cannot "
                                        f"be verified; {_restore(run)}")
        warnings.warn(
            f"{shown} has no {MANIFEST} (published before pdmodel recorded SHA-256 hashes of "
            f"results): its files are not verified. 'pdmodel report {run}' publishes them "
            "again with a manifest of the files as they are now", UserWarning, stacklevel=3)
        return PublishedResults(folder, None)
    for name, want in manifest.run_files.items():
        path = run / name
        if not path.is_file():
            raise ResultsIntegrityError(f"{path} is missing (listed in {listed}, run_files); "
                                        f"{_restore(run)}")
        if path.stat().st_size != want.size or file_sha256(path) != want.sha256:
            raise ResultsIntegrityError(
                f"{path} was changed after the results were published (its SHA-256 is not "
                f"the one {listed} records): the results were fitted with the {name} they "
                f"were published with; restore that one, or fit this configuration: pdmodel "
                f"fit {path} --set output.folder={run}")
    for name, want in manifest.files.items():
        _check_file(folder / name, want, shown / name, str(listed), _restore(run))
    extra = sorted(set(visible_files(folder)) - set(manifest.files))
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise ResultsIntegrityError(
            f"{shown / extra[0]}{more} is not listed in {listed}: added to the published "
            f"results afterwards; remove it, or {_restore(run)}")
    return PublishedResults(folder, manifest)


def _check_file(path: Path, want: ManifestEntry, shown: Path, listed: str, remedy: str
                ) -> None:
    """``path`` (named ``shown``) has the size and SHA-256 ``want`` that ``listed`` records."""
    if not path.is_file():
        raise ResultsIntegrityError(f"{shown} is missing (listed in {listed}); {remedy}")
    size = path.stat().st_size
    if size != want.size:
        raise ResultsIntegrityError(
            f"{shown} has {size} bytes, {listed} lists {want.size} (truncated or changed "
            f"after publishing); {remedy}")
    got = file_sha256(path)
    if got != want.sha256:
        raise ResultsIntegrityError(
            f"{shown} does not match its SHA-256 in {listed} (changed or corrupted after "
            f"publishing: {got[:12]}… instead of {want.sha256[:12]}…); {remedy}")


_rename = os.replace  # swapped out by tests to inject failures
_symlink = os.symlink

_NO_LINKS = (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)
"""What ``symlink`` fails with on a file system without symbolic links."""


class RunFolder:
    """A fit's run folder: resolved config, versions, seed, lock, checkpoints and results.

    Parameters
    ----------
    path : path
        The folder (created when needed).
    config : FitConfig, optional
        The run's configuration; needed for checkpoints (their config hash). Set by
        :meth:`open` and :meth:`create`.

    Notes
    -----
    Typical use::

        with RunFolder.open(cfg.output.folder, cfg, resume=args.resume) as run:
            got = run.load_checkpoint("map") if run.resume else None
            ...
            run.save_checkpoint("map", {"theta": theta}, {"loss": loss})
            run.publish({"posterior.nc": nc_bytes, "curves.csv": csv_text})

    ``results`` is a symbolic link to the published version in ``results.d/``, which holds
    ``MANIFEST.json`` (SHA-256 and size of every file, and of ``config.toml``);
    :meth:`publish` writes a complete new version and flips the link with one rename, so a
    reader finds complete results at every moment, and :func:`verify_results` (called by
    ``load_fit``) checks them. Locking the folder repairs an interrupted publish.
    """

    CONFIG = "config.toml"
    VERSIONS = "versions.json"
    SEED = "seed.txt"
    LOCK = ".lock"
    CHECKPOINTS = "checkpoints"
    RESULTS = "results"

    def __init__(self, path: str | os.PathLike, config: FitConfig | None = None):
        self.path = Path(os.path.abspath(path))
        self.config = config
        self.resume = False
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # paths
    @property
    def config_path(self) -> Path:
        """``config.toml``."""
        return self.path / self.CONFIG

    @property
    def lock_path(self) -> Path:
        """``.lock``."""
        return self.path / self.LOCK

    @property
    def checkpoints_path(self) -> Path:
        """``checkpoints/``."""
        return self.path / self.CHECKPOINTS

    @property
    def results_path(self) -> Path:
        """``results/``: a link to the published version in ``results.d/`` (a real folder
        when published by pdmodel before versioned results)."""
        return self.path / self.RESULTS

    @property
    def versions_path(self) -> Path:
        """``results.d/``: the published versions."""
        return self.path / VERSIONS_DIR

    # ------------------------------------------------------------------ open / create

    @classmethod
    def open(cls, path: str | os.PathLike, config: FitConfig, resume: bool = False,
             seed: int | None = None) -> RunFolder:
        """Lock and prepare ``path`` for a run of ``config``; returns the locked folder.

        A folder without results or checkpoints is (re)initialised. One holding results or
        checkpoints of the same configuration (``output.folder`` aside) is resumed
        (``resume=True``: checkpoints kept) or restarted (``resume=False``: checkpoints
        cleared; old results stay until :meth:`publish`).

        Parameters
        ----------
        path : path
        config : FitConfig
        resume : bool
            ``--resume``: continue from the folder's checkpoints.
        seed : int, optional
            Defaults to ``config.seed``.

        Raises
        ------
        RunConfigMismatchError
            The folder's results/checkpoints come from a different configuration; the message
            names the differing keys and says to pass ``--resume`` or choose another folder.
        RunLockedError
            Another live process is running in the folder.
        RunFolderError
            The folder's file system has no symbolic links (results could not be published).
        """
        if seed is not None and seed != config.seed:
            config = dataclasses.replace(config, seed=int(seed))
        run = cls(path, config)
        run.path.mkdir(parents=True, exist_ok=True)
        run.acquire()
        try:
            _remove(run._new_link("probe"))  # fail now, not after the fit, without links
            run._check_reusable(config, resume)
            if not resume:
                run.clear_checkpoints()
            run.create(config, seed)
            run.resume = resume
        except BaseException:
            run.release()
            raise
        return run

    def _has_state(self) -> bool:
        cp = self.checkpoints_path
        has_cp = cp.is_dir() and any(p.suffix in (".npz", ".json") for p in cp.iterdir())
        return has_cp or self.has_results()

    def _check_reusable(self, config: FitConfig, resume: bool) -> None:
        if not self._has_state():
            return
        try:
            stored = load_config(self.config_path)
        except ConfigError as e:
            stored, why = None, str(e).splitlines()[0]
        if stored is not None:
            keys = config_diff(stored, config)
            if not keys:
                return
            shown = ", ".join(keys[:12]) + (f" and {len(keys) - 12} more" if len(keys) > 12
                                            else "")
            what = f"its configuration ({self.config_path}) differs in: {shown}"
        else:
            keys = ["config.toml"]
            what = f"its configuration cannot be read ({why})"
        if resume:
            raise RunConfigMismatchError(
                f"cannot resume the run in {self.path}: {what}. Resume with the original "
                "configuration, or choose another output folder (output.folder).", keys)
        raise RunConfigMismatchError(
            f"{self.path} holds results or checkpoints of a different run: {what}. Pass "
            "--resume to continue that run with its configuration, or choose another output "
            "folder (output.folder), or delete the folder.", keys)

    def create(self, config: FitConfig, seed: int | None = None) -> None:
        """Write ``config.toml`` (resolved config), ``versions.json`` and ``seed.txt``.

        A ``config.toml`` that already holds ``config`` (``output.folder`` aside) next to
        published results is left as it is: the results' manifest records its SHA-256, so the
        old results stay readable while a resumed run (perhaps of a newer pdmodel, which writes
        the file differently) works towards new ones.

        Parameters
        ----------
        config : FitConfig
        seed : int, optional
            Defaults to ``config.seed``; a different value replaces ``config.seed``.
        """
        if seed is not None and seed != config.seed:
            config = dataclasses.replace(config, seed=int(seed))
        self.config = config
        self.path.mkdir(parents=True, exist_ok=True)
        stored = self.stored_config() if self.has_results() else None
        if stored is None or config_diff(stored, config):
            atomic_write_text(self.config_path, dump_config(
                config, header="resolved configuration of this run (written by pdmodel fit)"))
        atomic_write_text(self.path / self.VERSIONS,
                          json.dumps(versions_info(), indent=2) + "\n")
        atomic_write_text(self.path / self.SEED, f"{config.seed}\n")

    def stored_config(self) -> FitConfig | None:
        """The configuration in ``config.toml``, or None if missing or invalid."""
        try:
            return load_config(self.config_path)
        except ConfigError:
            return None

    # ------------------------------------------------------------------ lock

    @property
    def locked(self) -> bool:
        """Whether this object holds the folder's lock."""
        return self._lock_fd is not None

    def acquire(self) -> None:
        """Take the folder's ``.lock`` (writes this PID); re-entrant for the same object.

        A lock left by a dead process (same host) is taken over. Also repairs an interrupted
        :meth:`publish`.

        Raises
        ------
        RunLockedError
            Another live process (or another host) holds the lock.
        """
        if self._lock_fd is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        me = socket.gethostname()
        for _ in range(10):
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        pid, host = _parse_lock(os.pread(fd, 256, 0).decode(errors="replace"))
                        raise RunLockedError(self._locked_message(pid, host)) from None
                    try:  # the file we locked must still be the one at lock_path
                        same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
                    except FileNotFoundError:
                        same = False
                    if not same:
                        os.close(fd)
                        continue
                pid, host = _parse_lock(os.pread(fd, 256, 0).decode(errors="replace"))
                if pid is not None and (host not in (None, me) or _pid_alive(pid)):
                    raise RunLockedError(self._locked_message(pid, host))
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n{me}\n".encode(), 0)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            self._lock_fd = fd
            self._recover_publish()
            return
        raise RunLockedError(f"could not lock {self.lock_path} (it keeps changing)")

    def _locked_message(self, pid: int | None, host: str | None) -> str:
        who = f"process {pid}" if pid is not None else "another process"
        if host and host != socket.gethostname():
            who += f" on host {host}"
        return (f"{self.path} is in use by {who} (lock file {self.lock_path}); wait for it to "
                "finish, or delete the lock file if that process is gone")

    def release(self) -> None:
        """Remove the lock (no-op when not held)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            pid, _ = _parse_lock(os.pread(fd, 256, 0).decode(errors="replace"))
            if pid == os.getpid():
                self.lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def __enter__(self) -> RunFolder:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        if getattr(self, "_lock_fd", None) is not None:
            try:
                self.release()
            except Exception:
                pass

    # ------------------------------------------------------------------ checkpoints

    def _hash(self) -> str:
        if self.config is None:
            raise RunFolderError("this RunFolder has no config: use RunFolder.open(path, "
                                 "config, resume) or RunFolder(path, config)")
        return config_hash(self.config)

    def _stage_paths(self, stage: str) -> tuple[Path, Path]:
        if not isinstance(stage, str) or not _STAGE.match(stage):
            raise ValueError(f"checkpoint stage must be a simple name (letters, digits, _ . -), "
                             f"got {stage!r}")
        return (self.checkpoints_path / f"{stage}.npz",
                self.checkpoints_path / f"{stage}.json")

    def save_checkpoint(self, stage: str, arrays: Mapping[str, Any],
                        meta: Mapping[str, Any] | None = None) -> Path:
        """Save a finished stage: ``checkpoints/<stage>.npz`` then ``<stage>.json``, atomically.

        Parameters
        ----------
        stage : str
            E.g. ``"map"``, ``"design"``, ``"nuts"``.
        arrays : dict of str -> array
            Numeric arrays (no object dtype).
        meta : dict, optional
            JSON-serialisable extras (numpy scalars/arrays allowed). The keys ``stage``,
            ``complete``, ``config_hash``, ``npz_sha256``, ``arrays``, ``saved_at`` are added.

        Returns
        -------
        Path
            The ``.json`` file, written last: a stage is complete only when it is valid.
        """
        npz_path, json_path = self._stage_paths(stage)
        meta = dict(meta or {})
        clash = [k for k in _RESERVED_META if k in meta]
        if clash:
            raise ValueError(f"checkpoint meta keys {clash} are reserved")
        arrs = {str(k): np.asarray(v) for k, v in arrays.items()}
        bad = [k for k, v in arrs.items() if v.dtype.hasobject]
        if bad:
            raise TypeError(f"checkpoint arrays {bad} have object dtype; give numeric arrays")
        buf = io.BytesIO()
        np.savez(buf, **arrs)
        data = buf.getvalue()
        full = {**meta, "stage": stage, "complete": True, "config_hash": self._hash(),
                "npz_sha256": hashlib.sha256(data).hexdigest(), "arrays": sorted(arrs),
                "saved_at": datetime.datetime.now(datetime.UTC).isoformat()}
        text = json.dumps(full, indent=2, default=_json_default) + "\n"
        json_path.unlink(missing_ok=True)  # stage incomplete until the new json exists
        atomic_write_bytes(npz_path, data)
        atomic_write_text(json_path, text)
        return json_path

    def _read_meta(self, stage: str) -> tuple[dict, bytes] | None:
        npz_path, json_path = self._stage_paths(stage)
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
            data = npz_path.read_bytes()
        except (OSError, ValueError):
            return None
        if (not isinstance(meta, dict) or meta.get("complete") is not True
                or meta.get("stage") != stage or meta.get("config_hash") != self._hash()
                or meta.get("npz_sha256") != hashlib.sha256(data).hexdigest()):
            return None
        return meta, data

    def load_checkpoint(self, stage: str) -> tuple[dict[str, np.ndarray], dict] | None:
        """``(arrays, meta)`` of a saved stage, or None if missing, corrupt or from another config.

        Never raises for a damaged file (garbage, truncated, hash mismatch): the stage is then
        simply redone.
        """
        got = self._read_meta(stage)
        if got is None:
            return None
        meta, data = got
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception:
            return None
        return arrays, meta

    def completed_stages(self) -> list[str]:
        """Stages with a valid checkpoint for this config, in the order they were saved."""
        if not self.checkpoints_path.is_dir():
            return []
        found = []
        for p in self.checkpoints_path.glob("*.json"):
            stage = p.stem
            if not _STAGE.match(stage):
                continue
            got = self._read_meta(stage)
            if got is not None:
                found.append((str(got[0].get("saved_at", "")), stage))
        return [s for _, s in sorted(found)]

    def clear_checkpoints(self) -> None:
        """Delete ``checkpoints/`` (a fresh, non-resumed run)."""
        cp = self.checkpoints_path
        if cp.exists():
            trash = self.path / f".{self.CHECKPOINTS}.trash-{secrets.token_hex(4)}"
            _rename(cp, trash)
            shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------ results

    def has_results(self) -> bool:
        """Whether ``results/`` holds published results."""
        return self.results_path.is_dir()

    def _tmp_siblings(self) -> list[Path]:
        """``<run>.tmp-*`` folders next to the run folder: publishes of pdmodel before
        versioned results."""
        prefix = f"{self.path.name}.tmp-"
        parent = self.path.parent
        if not parent.is_dir():
            return []
        return sorted(p for p in parent.iterdir() if p.name.startswith(prefix) and p.is_dir())

    def _recover_publish(self) -> None:
        """Repair what an interrupted publish left: temporary versions and links are deleted;
        ``results`` missing or a broken link points again at the newest complete version."""
        for tmp in self._tmp_siblings():  # written by pdmodel before versioned results
            if not os.path.lexists(self.results_path):
                new, old = tmp / self.RESULTS, tmp / "previous"
                if (tmp / "READY").exists() and new.is_dir():
                    _rename(new, self.results_path)
                elif old.is_dir():
                    _rename(old, self.results_path)
            shutil.rmtree(tmp, ignore_errors=True)
        for link in self.path.glob(f".{self.RESULTS}.new-*"):
            _remove(link)
        store = self.versions_path
        if store.is_dir():
            for p in store.iterdir():
                if p.name.startswith((".tmp-", ".trash-")):
                    _remove(p)
        if not self.results_path.exists():  # missing, or a link to nothing
            versions = _numbered(store)
            if versions:
                self._link(versions[-1].name)
        for trash in self.path.glob(f".{self.CHECKPOINTS}.trash-*"):
            shutil.rmtree(trash, ignore_errors=True)

    def publish(self, files: Mapping[str, FileContent]) -> Path:
        """Publish ``files`` as the new version of ``results/``; a reader sees all old or all
        new files, never a moment without results.

        The files are written (and fsynced) into ``results.d/.tmp-<random>/`` with
        ``MANIFEST.json`` (SHA-256 and size of each file and of ``config.toml``); the folder
        is renamed to the next version number (``results.d/000004``) and the ``results`` link
        flipped to it by renaming a new link over it. The version before stays (readers that
        opened it keep reading) until the next publish; older ones are deleted. Any error
        before the flip leaves the old results as they were. A real ``results/`` folder
        (before versioned results) is first moved into ``results.d/``.

        Parameters
        ----------
        files : dict of relative path -> bytes, str or function(binary file)
            E.g. ``{"posterior.nc": b"...", "curves.csv": text,
            "plots/skin.png": lambda f: fig.savefig(f, format="png")}``; not
            ``MANIFEST.json``.

        Returns
        -------
        Path
            ``results/``.

        Raises
        ------
        RunFolderError
            The file system has no symbolic links (FAT, some network shares).
        RunLockedError
            Another live process holds the folder.
        """
        held = self.locked
        self.acquire()
        try:
            return self._publish(files)
        finally:
            if not held:
                self.release()

    def _publish(self, files: Mapping[str, FileContent]) -> Path:
        names = _result_names(files)
        store = self.versions_path
        store.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=store))
        try:
            for name, rel in names.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                write_new_file(target, files[name])
            manifest = build_manifest(tmp, [r.as_posix() for r in names.values()],
                                      self.config_path)
            write_new_file(tmp / MANIFEST, manifest_json(manifest))
            for d in sorted({tmp / p for rel in names.values() for p in rel.parents},
                            key=lambda d: -len(d.parts)):  # deepest first, then tmp itself
                fsync_dir(d)
            versions = _numbered(store)
            number = int(versions[-1].name) + 1 if versions else 1
            moved = None  # a real results/ folder gets the number before the new version
            if self.results_path.is_dir() and not self.results_path.is_symlink():
                moved, number = f"{number:06d}", number + 1
            name = f"{number:06d}"
            _rename(tmp, store / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(store)
        try:
            previous = self._flip(name, moved)
        except BaseException:
            _remove(store / name)
            raise
        self._prune(keep={name, previous})
        return self.results_path

    def _flip(self, name: str, moved: str | None) -> str | None:
        """Point ``results`` at version ``name``; returns the version it pointed at before.

        ``moved``: the number a real ``results/`` folder gets in ``results.d`` (renamed there
        first; put back if the flip fails).
        """
        res, store = self.results_path, self.versions_path
        previous = None
        if res.is_symlink():
            target = Path(os.readlink(res))
            previous = target.name if target.parent == Path(VERSIONS_DIR) else None
        link = self._new_link(name)
        try:
            if moved is not None:
                _rename(res, store / moved)
                previous = moved
            _rename(link, res)
        except BaseException:
            _remove(link)
            if moved is not None and not os.path.lexists(res) and (store / moved).is_dir():
                _rename(store / moved, res)
            raise
        fsync_dir(self.path)
        return previous

    def _new_link(self, name: str) -> Path:
        """A new link ``.results.new-<random>`` to version ``name``, next to ``results``."""
        link = self.path / f".{self.RESULTS}.new-{secrets.token_hex(4)}"
        try:
            _symlink(f"{VERSIONS_DIR}/{name}", link)
        except (OSError, NotImplementedError) as err:
            if isinstance(err, OSError) and err.errno not in _NO_LINKS:
                raise
            raise RunFolderError(
                f"cannot publish results in {self.path}: the file system does not allow "
                f"symbolic links ({err}); choose an output folder (output.folder) on another "
                "file system") from err
        return link

    def _link(self, name: str) -> None:
        """Point ``results`` at version ``name`` (one rename of a new link over it)."""
        link = self._new_link(name)
        try:
            _rename(link, self.results_path)
        except BaseException:
            _remove(link)
            raise
        fsync_dir(self.path)

    def _prune(self, keep: set[str | None]) -> None:
        """Delete the versions of ``results.d`` not in ``keep`` (each renamed aside first, so
        a half-deleted folder is never taken for a version)."""
        for p in _numbered(self.versions_path):
            if p.name not in keep:
                _remove(p)


def _result_names(files: Mapping[str, FileContent]) -> dict[str, Path]:
    """``{name: relative path}`` of ``files``, checked (inside ``results/``, one path each,
    not the manifest)."""
    names, seen = {}, set()
    for name in files:
        rel = Path(name)
        if (not isinstance(name, str) or not name or name.endswith("/") or rel.is_absolute()
                or ".." in rel.parts):
            raise ValueError(f"result file names must be relative paths inside results/, "
                             f"got {name!r}")
        if rel.as_posix() == MANIFEST:
            raise ValueError(f"{MANIFEST} is written by publish itself; do not pass it")
        if rel.as_posix() in seen:
            raise ValueError(f"result file {rel.as_posix()!r} given twice")
        seen.add(rel.as_posix())
        names[name] = rel
    return names


def _remove(path: Path) -> None:
    """Delete a file, link or folder; a folder is renamed to ``.trash-<random>`` first."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    if not path.is_dir():
        return
    if not path.name.startswith(".trash-"):
        trash = path.parent / f".trash-{secrets.token_hex(4)}"
        try:
            _rename(path, trash)
        except OSError:
            trash = path
        path = trash
    shutil.rmtree(path, ignore_errors=True)
