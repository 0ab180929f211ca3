"""One audit per output folder, swapped in whole.

An audit writes into a fresh hidden folder beside ``--out`` (``.NAME.tmp-XXXXXXXX``, same parent) and,
once every file is written, swaps it in: an atomic exchange of the two folders on Linux
(``renameat2(RENAME_EXCHANGE)``), a plain rename when ``--out`` does not exist, and elsewhere two renames
with the old folder kept as ``.NAME.old-XXXXXXXX`` until the new one is in place (the next run puts it
back if a crash came between them). A lock file beside the folder (``.NAME.lock``, ``flock``) is held from
the start of the audit to the end of the swap, so a second audit into the same folder fails at once.
Reader's guarantee: ``--out`` is always one whole audit, old or new, never a mix.

``manifest.json`` in the folder records each file's SHA-256 and, for each report, the SHA-256 of the
results.json it was rendered from; it is written last (`record_manifest`), and `check_folder` checks it.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from auditor import report
from auditor.atomic import atomic_write_text
from auditor.errors import BadInputError, UsageError
from auditor.results import write_results

try:
    import fcntl
except ImportError:  # Windows: no flock; audits into one folder are then not guarded
    fcntl = None  # type: ignore[assignment]

__all__ = ["MANIFEST", "StagedFolder", "render_outputs", "write_outputs", "check_out_folder", "folder_lock", "record_manifest", "check_folder",
           "results_in", "sha256_file"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
RESULTS = "results.json"
REPORT_NAMES = ("report.html", "report.pdf", "report.md", "report.junit.xml")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def results_in(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or ``path/results.json`` when ``path`` is a folder (exit 2 when it holds none)."""
    p = Path(path)
    if p.is_dir():
        if not (p / RESULTS).is_file():
            raise BadInputError(f"{p} holds no results.json; pass an audit folder or the results.json an audit wrote")
        return p / RESULTS
    return p


def check_out_folder(out: str | os.PathLike[str], *, force: bool) -> None:
    """Refuse an ``--out`` the audit must not replace: a file, an earlier audit without ``force``, or a
    non-empty folder that holds no audit (never deleted, even with ``force``). A missing or empty folder is fine."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a folder (it is created if missing)")
    if not out.is_dir():
        return
    if (out / RESULTS).exists():
        if not force:
            raise UsageError(f"--out {out} holds an earlier audit; pass --force to replace it, or another --out")
        cwd = Path.cwd().resolve()
        if cwd == out.resolve() or out.resolve() in cwd.parents:
            raise UsageError(f"--out {out} is the current folder or holds it; pass another --out")
        return
    if any(out.iterdir()):
        raise UsageError(f"--out {out} is not empty and holds no audit (no results.json); pass a new or empty folder")


# --- the lock -------------------------------------------------------------------------------------


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def folder_lock(out: str | os.PathLike[str], what: str = "audit") -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``out`` (exclusive, non-blocking); a holder elsewhere is a one-line exit 2.

    The lock file is removed on release (while still locked; a waiter that opened the removed file sees its
    inode gone and opens the new one), so it leaves nothing behind."""
    target = Path(out).resolve()  # as `StagedFolder.target`: one lock per real folder
    if fcntl is None:
        yield
        return
    path = _lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                os.close(fd)
                raise
            pid = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(f"another {what} is writing to {out} (pid {pid}); wait for it or pass another --out") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed it between our open and our lock: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


# --- swapping folders -----------------------------------------------------------------------------


def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc before 2.28, musl without it
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing folders; False where the system or file system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fresh_dir(target: Path, kind: str) -> Path:
    """A new empty ``.NAME.KIND-XXXXXXXX`` folder beside ``target`` (mode as umask allows, as ``--out`` gets)."""
    while True:
        path = target.parent / f".{target.name}.{kind}-{''.join(secrets.choice(_ALPHABET) for _ in range(8))}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _leftovers(target: Path, kind: str) -> list[Path]:
    """Hidden ``.NAME.tmp-XXXXXXXX`` / ``.NAME.old-XXXXXXXX`` folders of ``target`` (`_fresh_dir`'s names)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.{kind}-[a-z0-9_]{{8}}")
    return [p for p in target.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]


def _recover(target: Path) -> None:
    """Under the lock: put back an old folder a crash left mid-swap, and delete other runs' leftovers."""
    olds = sorted(_leftovers(target, "old"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not target.exists():
        for old in olds:
            if (old / RESULTS).is_file():
                os.replace(old, target)
                log.warning("restored %s, which an interrupted audit had moved aside", target)
                olds.remove(old)
                break
    for leftover in olds + _leftovers(target, "tmp"):
        log.info("removing %s, left by an interrupted audit", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


class StagedFolder:
    """A fresh hidden folder beside ``out`` that `commit` swaps in whole; ``with`` holds the lock.

    On entry: refuse what `check_out_folder` refuses, take the lock, clean up after crashed runs, create the
    staging folder (``.path``). On leaving without `commit` (error, Ctrl-C): delete it, ``out`` untouched."""

    def __init__(self, out: str | os.PathLike[str], *, force: bool = False) -> None:
        self.out = Path(out)
        self.force = force
        self.path: Path | None = None
        self.committed = False
        self._stack = contextlib.ExitStack()
        self._made: list[Path] = []

    @property
    def target(self) -> Path:
        """``out`` resolved (a symlinked folder is replaced where it lies)."""
        return self.out.resolve()

    def __enter__(self) -> StagedFolder:
        check_out_folder(self.out, force=self.force)
        target = self.target
        if target.name in ("", ".", ".."):
            raise UsageError(f"--out {self.out} names no folder; pass a folder path")
        parent = target.parent
        while not parent.exists():
            self._made.append(parent)
            parent = parent.parent
        try:
            self._stack.enter_context(folder_lock(self.out))
            _recover(target)
            check_out_folder(self.out, force=self.force)  # again: another audit may have finished meanwhile
            self.path = _fresh_dir(target, "tmp")
        except BaseException:
            self._stack.close()
            self._remove_made()
            raise
        return self

    def commit(self) -> None:
        """Swap the staging folder in for ``out`` (the old one, if any, is deleted afterwards)."""
        assert self.path is not None, "commit() outside `with StagedFolder(...)`"
        target = self.target
        _fsync_dir(self.path)
        if not target.exists():
            os.replace(self.path, target)
        elif _exchange(self.path, target):
            shutil.rmtree(self.path, ignore_errors=True)  # the staging path now holds the old folder
        else:
            old = _fresh_dir(target, "old")
            try:
                os.replace(target, old)
                os.replace(self.path, target)
            except BaseException:
                if not target.exists():  # between the two: put the old folder back
                    os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        self.committed = True
        _fsync_dir(target.parent)

    def final(self, paths: dict[str, Path]) -> dict[str, Path]:
        """Paths written into the staging folder, as they are in ``out`` once committed."""
        return {k: self.out / Path(p).name for k, p in paths.items()}

    def __exit__(self, *exc: Any) -> None:
        try:
            if not self.committed and self.path is not None:
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self._stack.close()
            if not self.committed and not self.out.exists():
                self._remove_made()

    def _remove_made(self) -> None:
        for folder in self._made:
            with contextlib.suppress(OSError):
                folder.rmdir()


# --- the manifest ---------------------------------------------------------------------------------


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def record_manifest(folder: str | os.PathLike[str], reports: Iterable[str | os.PathLike[str]], results_sha256: str) -> Path:
    """Update ``folder/manifest.json`` (atomically, after the files it lists): every file's SHA-256, and for
    ``reports`` (just written) the SHA-256 of the results.json they were rendered from. Entries of files
    that are gone are dropped; other reports keep what they were rendered from."""
    folder = Path(folder)
    old = _read_manifest(folder) or {"files": {}}
    rendered = {Path(r).name for r in reports}
    files: dict[str, Any] = {}
    for name in (RESULTS, *REPORT_NAMES):
        if not (folder / name).is_file():
            continue
        entry: dict[str, Any] = {"sha256": sha256_file(folder / name)}
        if name in rendered:
            entry["results_sha256"] = results_sha256
        elif name != RESULTS:
            entry["results_sha256"] = (old["files"].get(name) or {}).get("results_sha256")
        files[name] = entry
    manifest = {"manifest_version": 1, "files": files}
    return atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def check_folder(folder: str | os.PathLike[str]) -> list[str]:
    """What is inconsistent in an audit folder (empty: every file is the one the manifest lists, and every
    report was rendered from the results.json beside it)."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    if manifest is None:
        return [f"{folder / MANIFEST} is missing or unreadable"]
    problems = []
    files = manifest["files"]
    results_sha = sha256_file(folder / RESULTS) if (folder / RESULTS).is_file() else None
    if results_sha is None:
        problems.append(f"{folder / RESULTS} is missing")
    for name in (RESULTS, *REPORT_NAMES):
        present, entry = (folder / name).is_file(), files.get(name)
        if present != (entry is not None):
            problems.append(f"{name} is {'not listed in' if present else 'listed in but missing from'} the manifest")
        elif present and sha256_file(folder / name) != entry.get("sha256"):
            problems.append(f"{name} differs from the file the manifest lists")
        elif present and name != RESULTS and entry.get("results_sha256") != results_sha:
            problems.append(f"{name} was rendered from another results.json")
    return problems


# --- writing an audit folder ----------------------------------------------------------------------


def render_outputs(results: dict[str, Any], out_dir: Path, formats: Sequence[str], *, force: bool = False) -> dict[str, Path]:
    """Write an audit folder: results.json (always), each requested report format and manifest.json, all
    into a staging folder swapped in for ``out_dir`` whole (`StagedFolder`; an earlier audit
    there is refused unless ``force``). On any error, ``out_dir`` is left as it was."""
    with StagedFolder(out_dir, force=force) as staged:
        paths = write_outputs(results, staged.path, formats)
        staged.commit()
    return staged.final(paths)


def write_outputs(results: dict[str, Any], folder: Path, formats: Sequence[str]) -> dict[str, Path]:
    """results.json, then each report format, then manifest.json (each atomically) into ``folder``.

    The PDF comes last of the reports (slowest, and the one that needs system libraries): when weasyprint or
    Pango is missing it raises `auditor.report.PdfUnavailableError` (exit 2)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_results(results, folder)}
    paths.update(report.write_reports(results, folder, [f for f in report.REPORT_FILES if f in formats]))
    record_manifest(folder, [p for k, p in paths.items() if k != "json"], sha256_file(paths["json"]))
    return paths
