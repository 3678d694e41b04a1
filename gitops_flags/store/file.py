"""`file:PATH`: the store as a directory, the embedded default.

A write changes several files at once, yet must land whole or not at all. It goes in three steps, all
under an exclusive `flock` on `PATH/.lock` (the compare-and-swap check happens inside the lock):

1. every new file is written to a temporary file in the same directory and fsynced;
2. a journal naming those temporary files (and the files to delete) is renamed into place: this
   rename is the commit point;
3. the temporary files are renamed over the real ones, the manifest last, and the journal removed.

A crash before step 2 leaves the old version intact (the stray temporaries are removed later); a crash
after it is finished by the next reader or writer, which replays the journal first. Each rename is
atomic, so flagd watching `production.flagd.json` never sees half a file.

With a seal key, every write also writes `store.seal` (see `seal`) and keeps a copy of the sealed version
under `.generations/` (the last GENERATIONS of them): the file store has no history of its own, and
`repair` restores the newest copy whose seal still verifies.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .base import (
    AUDIT_FILE,
    MANIFEST_FILE,
    STATE_FILE,
    ConflictError,
    Repaired,
    StoreCorrupt,
    StoreError,
    StoreSnapshot,
    audit_lines,
    check_file,
    check_listing,
    decode,
    encode,
    is_data_file,
    manifest,
    parse_audit,
    parse_manifest,
    sha256,
    version_of,
)
from .seal import SEAL_FILE, SealKey, check, refuse_unkeyed_write, require_key, seal_bytes
from .state import StoreState

LOCK_FILE = ".lock"
JOURNAL_FILE = ".journal.json"
GENERATIONS_DIR = ".generations"
GENERATIONS = 5
SCOPE = "file"
_TMP_SUFFIX = ".tmp"


class FileStore:
    def __init__(self, path: str | os.PathLike[str], key: SealKey | None = None) -> None:
        self.root = Path(path)
        self.where = str(self.root)
        self.key = key

    # --- the Store protocol ------------------------------------------------------------------------

    def read(self) -> StoreSnapshot:
        with self._locked(create=False):
            snapshot, _ = self._read()
            return snapshot

    def write(
        self,
        state: StoreState,
        documents: Mapping[str, Mapping[str, Any]],
        expected_version: str | None,
        audit: Sequence[Mapping[str, Any]] = (),
        message: str = "",
    ) -> str:
        new_files = encode(state, documents)  # bad environment names fail before anything is touched
        with self._locked(create=True):
            current, entries = self._read()
            refuse_unkeyed_write(current.seal, self.where)
            if current.version != expected_version:
                raise ConflictError(
                    f"the store at {self.where} moved (expected version {expected_version}, found "
                    f"{current.version}); read it again"
                )
            old_audit = self._audit_bytes(entries)
            if audit or AUDIT_FILE in entries:
                new_files[AUDIT_FILE] = old_audit + audit_lines(audit)
            new_manifest = manifest(new_files)
            new_version = version_of(new_manifest)
            if new_version == current.version:
                return new_version  # nothing changed: write nothing, so flagd sees no event
            return self._put(new_files, entries)

    def append_audit(self, records: Sequence[Mapping[str, Any]], expected_version: str | None) -> str:
        with self._locked(create=False):
            current, _ = self._read()
        return self.write(current.state, current.documents, expected_version, records)

    def read_audit(self) -> list[dict[str, Any]]:
        with self._locked(create=False):
            _, entries = self._read()
            return parse_audit(self._audit_bytes(entries), self.where)

    # --- repair ------------------------------------------------------------------------------------

    def reseal(self, audit: Sequence[Mapping[str, Any]] = ()) -> str:
        """Accept the files as they are now (after an intended hand edit): check that they still parse,
        append `audit` (who vouched for them), then write a new manifest, and a seal when the store has a
        key. Returns the new version."""
        with self._locked(create=False):
            names = [n for n in self._listing() if is_data_file(n)]
            if STATE_FILE not in names:
                raise StoreError(f"{self.where} has no {STATE_FILE}; there is nothing to re-seal")
            files = {n: (self.root / n).read_bytes() for n in names}
            entries = {n: sha256(b) for n, b in files.items()}
            decode(entries, {n: b for n, b in files.items() if n != AUDIT_FILE}, self.where)
            parse_audit(files.get(AUDIT_FILE, b""), self.where)
            if audit:
                files[AUDIT_FILE] = files.get(AUDIT_FILE, b"") + audit_lines(audit)
            return self._put(files, entries)

    def repair(self, audit: Sequence[Mapping[str, Any]] = ()) -> Repaired:
        """Put back the newest kept generation whose seal verifies, when the store itself does not
        (needs the key). `audit` is appended to it. Nothing is written when the store verifies."""
        require_key(self.key, self.where)
        with self._locked(create=False):
            try:
                self._read()
                return Repaired(None)
            except StoreCorrupt as exc:
                problem = str(exc)
            for generation in self._generations(newest_first=True):
                try:
                    files = self._load_generation(generation)
                except StoreCorrupt:
                    continue
                if audit:
                    files[AUDIT_FILE] = files.get(AUDIT_FILE, b"") + audit_lines(audit)
                names = [n for n in self._listing() if is_data_file(n)]
                version = self._put(files, {n: sha256((self.root / n).read_bytes()) for n in names})
                return Repaired(version, f"generation {generation.name} ({self.where}/{GENERATIONS_DIR})",
                                problem)
        raise StoreError(
            f"{self.where} fails its seal ({problem}), and no kept copy under {GENERATIONS_DIR}/ verifies "
            "either; restore the directory from a backup, then run `gitops-flags apply --repair` again"
        )

    # --- reading -----------------------------------------------------------------------------------

    def _read(self) -> tuple[StoreSnapshot, dict[str, str]]:
        """The snapshot and the manifest's entries. Call with the lock held."""
        present = self._listing()
        path = self.root / MANIFEST_FILE
        if MANIFEST_FILE not in present:
            strays = [n for n in present if is_data_file(n)]
            if strays:
                raise StoreCorrupt(
                    f"{self.where} holds {', '.join(strays)} but no {MANIFEST_FILE}: it was not written by "
                    "gitops-flags, or its manifest was deleted; restore the manifest, or re-seal the store "
                    "(see docs/store.md, 'Hand edits')"
                )
            return StoreSnapshot(StoreState(), {}, None), {}
        raw = path.read_bytes()
        entries = parse_manifest(raw, self.where)
        check_listing(entries, present, self.where)
        files = {n: (self.root / n).read_bytes() for n in entries if n != AUDIT_FILE}
        seal_raw = (self.root / SEAL_FILE).read_bytes() if SEAL_FILE in present else None
        status = check(self.key, seal_raw, SCOPE, "", raw, self.where)
        state, documents = decode(entries, files, self.where)
        return StoreSnapshot(state, documents, version_of(raw), status), entries

    def _audit_bytes(self, entries: Mapping[str, str]) -> bytes:
        if AUDIT_FILE not in entries:
            return b""
        data = (self.root / AUDIT_FILE).read_bytes()
        check_file(entries, AUDIT_FILE, data, self.where)
        return data

    def _listing(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            e.name
            for e in os.scandir(self.root)
            if e.is_file(follow_symlinks=False) and not e.name.startswith(".")
        )

    # --- writing -----------------------------------------------------------------------------------

    def _put(self, files: Mapping[str, bytes], entries: Mapping[str, str]) -> str:
        """Commit `files` (every data file of the new version) over the files `entries` describes, with a
        new manifest, and a seal and a kept generation when there is a key. Returns the new version."""
        new_manifest = manifest(files)
        changed = {n: b for n, b in files.items() if entries.get(n) != sha256(b)}
        deleted = sorted(n for n in entries if n not in files)
        seal = seal_bytes(self.key, SCOPE, "", new_manifest) if self.key else None
        self._commit(changed, deleted, new_manifest, seal)
        if seal is not None:
            self._keep_generation({**files, MANIFEST_FILE: new_manifest, SEAL_FILE: seal})
        return version_of(new_manifest)

    def _commit(self, changed: Mapping[str, bytes], deleted: Sequence[str], new_manifest: bytes,
                seal: bytes | None = None) -> None:
        token = secrets.token_hex(6)
        renames: list[list[str]] = []
        for name in sorted(changed):
            renames.append([self._write_temp(name, changed[name], token), name])
        if seal is not None:
            renames.append([self._write_temp(SEAL_FILE, seal, token), SEAL_FILE])
        renames.append([self._write_temp(MANIFEST_FILE, new_manifest, token), MANIFEST_FILE])
        journal = {"renames": renames, "deletes": list(deleted)}
        journal_tmp = self._write_temp(JOURNAL_FILE, json.dumps(journal).encode(), token)
        os.replace(self.root / journal_tmp, self.root / JOURNAL_FILE)  # the commit point
        self._sync_dir()
        self._replay(journal)

    def _replay(self, journal: Mapping[str, Any]) -> None:
        """Finish a committed write. Idempotent: a rename already done has no temporary file left."""
        renames: list[list[str]] = journal["renames"]
        for tmp, name in renames[:-1]:
            if (self.root / tmp).exists():
                os.replace(self.root / tmp, self.root / name)
        for name in journal["deletes"]:
            (self.root / name).unlink(missing_ok=True)
        tmp, name = renames[-1]  # the manifest goes last: until then the old one does not match
        if (self.root / tmp).exists():
            os.replace(self.root / tmp, self.root / name)
        self._sync_dir()
        (self.root / JOURNAL_FILE).unlink()
        self._sync_dir()

    def _recover(self) -> None:
        """Finish a write that crashed after its commit point; drop temporaries of one that did not."""
        journal_path = self.root / JOURNAL_FILE
        if journal_path.exists():
            try:
                journal = json.loads(journal_path.read_bytes())
                ok = isinstance(journal, dict) and isinstance(journal.get("renames"), list)
            except ValueError:
                ok = False
            if not ok:
                raise StoreCorrupt(f"{self.where}/{JOURNAL_FILE} is damaged; restore the store from a backup")
            self._replay(journal)
        for entry in os.scandir(self.root):
            if entry.name.startswith(".") and entry.name.endswith(_TMP_SUFFIX):
                os.unlink(entry.path)

    # --- kept generations (sealed copies for `repair`) ------------------------------------------------

    def _generations(self, newest_first: bool = False) -> list[Path]:
        folder = self.root / GENERATIONS_DIR
        if not folder.is_dir():
            return []
        found = sorted((p for p in folder.iterdir() if p.name.isdigit() and p.is_dir()),
                       key=lambda p: int(p.name))
        return found[::-1] if newest_first else found

    def _keep_generation(self, files: Mapping[str, bytes]) -> None:
        """Copy the version just committed to `.generations/<n>` (written aside, then renamed into place),
        and drop all but the last GENERATIONS. Copies, not hard links: an edit in place would change both."""
        folder = self.root / GENERATIONS_DIR
        folder.mkdir(exist_ok=True)
        for stale in folder.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        kept = self._generations()
        number = int(kept[-1].name) + 1 if kept else 1
        tmp = folder / f".tmp-{secrets.token_hex(6)}"
        tmp.mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        os.replace(tmp, folder / f"{number:08d}")
        for old in kept[: max(0, len(kept) + 1 - GENERATIONS)]:
            shutil.rmtree(old, ignore_errors=True)

    def _load_generation(self, folder: Path) -> dict[str, bytes]:
        """A kept generation's data files, when its manifest, checksums and seal all verify."""
        where = f"{self.where}/{GENERATIONS_DIR}/{folder.name}"
        present = sorted(p.name for p in folder.iterdir() if p.is_file())
        if MANIFEST_FILE not in present or SEAL_FILE not in present:
            raise StoreCorrupt(f"{where} is incomplete")
        raw = (folder / MANIFEST_FILE).read_bytes()
        entries = parse_manifest(raw, where)
        check_listing(entries, present, where)
        check(self.key, (folder / SEAL_FILE).read_bytes(), SCOPE, "", raw, where)
        files = {n: (folder / n).read_bytes() for n in entries}
        decode(entries, {n: b for n, b in files.items() if n != AUDIT_FILE}, where)
        if AUDIT_FILE in files:
            check_file(entries, AUDIT_FILE, files[AUDIT_FILE], where)
        return files

    def _write_temp(self, name: str, data: bytes, token: str) -> str:
        tmp = f".{name.lstrip('.')}.{token}{_TMP_SUFFIX}"
        fd = os.open(self.root / tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def _sync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- locking -----------------------------------------------------------------------------------

    @contextmanager
    def _locked(self, create: bool) -> Iterator[None]:
        """Hold the store's exclusive lock; finish or clean up an interrupted write first."""
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            yield  # no directory: an empty store, nothing to lock or recover
            return
        try:
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if create or exc.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise
            yield  # a read-only store (a checked-out copy, say): read without the lock
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._recover()
            yield
        finally:
            os.close(fd)  # closing releases the lock

