"""The run folder of ``pdmodel fit``: a PID lock, checkpoints, atomic publishing of results.

A run folder holds::

    config.toml      resolved configuration (pdmodel.fit._config.dump_config)
    versions.json    Python, platform and package versions
    seed.txt         the seed
    .lock            PID (and host) of the process running the fit
    checkpoints/     <stage>.npz + <stage>.json per finished stage (resumable)
    results/         final outputs, replaced as a whole by RunFolder.publish

Every file is written to a temporary name in its folder, fsynced and renamed, so a killed run
leaves either the old or the new file. ``results/`` is built in a sibling folder
``<run>.tmp-<random>/results`` and swapped in by renames; an interrupted swap is repaired the next
time the folder is locked.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, RunConfigMismatchError, RunFolderError, RunLockedError
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


_rename = os.rename  # swapped out by tests to inject failures


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
        """``results/``."""
        return self.path / self.RESULTS

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
        """
        if seed is not None and seed != config.seed:
            config = dataclasses.replace(config, seed=int(seed))
        run = cls(path, config)
        run.path.mkdir(parents=True, exist_ok=True)
        run.acquire()
        try:
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
        """Whether ``results/`` exists."""
        return self.results_path.is_dir()

    def _tmp_siblings(self) -> list[Path]:
        prefix = f"{self.path.name}.tmp-"
        parent = self.path.parent
        if not parent.is_dir():
            return []
        return sorted(p for p in parent.iterdir() if p.name.startswith(prefix) and p.is_dir())

    def _recover_publish(self) -> None:
        """Finish or undo a publish interrupted between its renames; drop stale temp folders."""
        for tmp in self._tmp_siblings():
            if not self.results_path.exists():
                new, old = tmp / self.RESULTS, tmp / "previous"
                if (tmp / "READY").exists() and new.is_dir():
                    _rename(new, self.results_path)
                elif old.is_dir():
                    _rename(old, self.results_path)
            shutil.rmtree(tmp, ignore_errors=True)
        for trash in self.path.glob(f".{self.CHECKPOINTS}.trash-*"):
            shutil.rmtree(trash, ignore_errors=True)

    def publish(self, files: Mapping[str, FileContent]) -> Path:
        """Replace ``results/`` as a whole by ``files``; a reader sees all old or all new files.

        The files are written (and fsynced) into ``<run>.tmp-<random>/results/``; then the old
        ``results/`` is renamed into that temporary folder, the new one renamed in, and the
        temporary folder deleted. Any error before the swap leaves the old results untouched.

        Parameters
        ----------
        files : dict of relative path -> bytes, str or function(binary file)
            E.g. ``{"posterior.nc": b"...", "curves.csv": text,
            "plots/skin.png": lambda f: fig.savefig(f, format="png")}``.

        Returns
        -------
        Path
            ``results/``.
        """
        held = self.locked
        self.acquire()
        try:
            return self._publish(files)
        finally:
            if not held:
                self.release()

    def _publish(self, files: Mapping[str, FileContent]) -> Path:
        names = {}
        for name in files:
            rel = Path(name)
            if not name or name.endswith("/") or rel.is_absolute() or ".." in rel.parts:
                raise ValueError(f"result file names must be relative paths inside results/, "
                                 f"got {name!r}")
            names[name] = rel
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{self.path.name}.tmp-", dir=self.path.parent))
        try:
            new = tmp / self.RESULTS
            new.mkdir()
            for name, rel in names.items():
                target = new / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                write_new_file(target, files[name])
            for d in {new / rel.parent for rel in names.values()} | {new}:
                fsync_dir(d)
            (tmp / "READY").touch()
            fsync_dir(tmp)
            old = tmp / "previous"
            had_old = self.results_path.exists()
            if had_old:
                _rename(self.results_path, old)
            try:
                _rename(new, self.results_path)
            except BaseException:
                if had_old and not self.results_path.exists():
                    _rename(old, self.results_path)
                raise
            fsync_dir(self.path)
        finally:
            # keep tmp only if it holds the sole copy of the old results (repaired on next lock)
            if self.results_path.exists() or not (tmp / "previous").exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.results_path
