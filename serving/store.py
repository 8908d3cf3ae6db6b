"""The versioned model store the Pusher writes and the model server reads.

Layout, TF Serving compatible (servers load only the numeric folders):
  <root>/<model>/<version>/                SavedModel + manifest.json (+ manifest.sig when signed)
  <root>/<model>/<version>.rejected/       a version taken out of service by a rollback (kept)
  <root>/<model>/.staging-<version>-<pid>/ a push in progress, invisible to servers
  <root>/<model>/history.jsonl             one line per publish, rejection, restore and delete
  <root>/<model>/operation.json            a change committed but not yet applied (see below)
  <root>/<model>/rollout.json              a canary or shadow rollout's state (serving/rollout.py)

Every change is all-or-nothing. A publish is written aside first. Then each change (the rename
that publishes, the renames of a rollback, the deletes of retention) is committed by writing
`operation.json` whole, applied to the folders, recorded in the history and the file removed.
Readers apply a pending operation to what they list, so they see the old state or the new one,
never a part; a writer that finds one left by a crash finishes it first. On object stores,
where a folder rename is not atomic, the manifest is the commit record of a version's files: a
server only loads a version whose files all match the SHA-256 sums its manifest lists.

One folder that cannot be read (a manifest in UTF-16, a file where a folder should be) is listed
with its problem and refused alone; the other versions are unaffected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import posixpath
import re
import time
import uuid
from typing import Any, Optional

from serving import filesystem, signing

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
HISTORY_FILE = "history.jsonl"
OPERATION_FILE = "operation.json"
REJECTED_SUFFIX = ".rejected"
STAGING_PREFIX = ".staging-"
DELETING_PREFIX = ".deleting-"
# Files the store writes beside a model's own files; the manifest's sums cover everything else.
_STORE_FILES = (MANIFEST_FILE, SIGNATURE_FILE)
# A manifest lists a few hundred files at most; anything far larger is not one.
MAX_MANIFEST_BYTES = 16 << 20
_MAX_SIGNATURE_BYTES = 4096
# A version folder's name: a number as TF Serving writes it (no sign, no leading zero).
_VERSION_NAME = re.compile(r"(0|[1-9][0-9]*)(\.rejected)?")
_LOOSE_VERSION_NAME = re.compile(r"[0-9]+(\.rejected)?")

logger = logging.getLogger("textclf.store")


class StoreError(RuntimeError):
    """The store cannot do what was asked (no such version, nothing to roll back to)."""


class VersionRefused(StoreError):
    """A version's files do not match its manifest, or its signature is missing or wrong."""


@dataclasses.dataclass(frozen=True)
class Version:
    """One published version as the store lists it.

    `problem` says why its folder cannot be used at all (its manifest is missing, not UTF-8,
    not a JSON object...); `manifest` is then empty.
    """

    number: int
    path: str
    rejected: bool
    manifest: dict[str, Any]
    problem: str = ""

    @property
    def signed(self) -> bool:
        try:
            return filesystem.exists(filesystem.join(self.path, SIGNATURE_FILE))
        except OSError:
            return False


@dataclasses.dataclass(frozen=True)
class _Operation:
    """A committed change: folder renames and deletes (names in the model folder), and the
    history lines that record it.

    A replacement (staging, name, retired) swaps a written-aside folder in for a version: the
    old folder goes to `retired` (then deleted) and staging becomes `name`. It is done only
    while staging exists, so repeating it after a crash never moves the new folder away.
    """

    id: str
    renames: list[tuple[str, str]]
    deletes: list[str]
    history: list[dict[str, Any]]
    replacements: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def applied_to(self, folders: dict[str, str]) -> dict[str, str]:
        """What `folders` (name -> path) holds once this operation is applied."""
        folders = dict(folders)
        for source, target in self.renames:
            if source in folders:
                folders[target] = folders.pop(source)
        for staging, name, retired in self.replacements:
            if staging in folders:
                folders[name] = folders.pop(staging)
            folders.pop(retired, None)
        for name in self.deletes:
            folders.pop(name, None)
        return folders


class ModelStore:
    """The versions of one model under `<root>/<model_name>/`."""

    def __init__(self, root: str, model_name: str):
        self.model_dir = filesystem.join(root.rstrip("/"), model_name)

    def versions(self) -> list[Version]:
        """Every published version, oldest first, rejected and unreadable ones included.

        Raises StoreError only when the model folder itself cannot be listed.
        """
        try:
            if not filesystem.isdir(self.model_dir):
                return []
            folders = {name: filesystem.join(self.model_dir, name)
                       for name in filesystem.listdir(self.model_dir)}
        except OSError as error:
            raise StoreError(f"cannot list {self.model_dir}: {error}") from error
        pending = self._pending_operation(strict=False)
        if pending:
            folders = pending.applied_to(folders)
        found = []
        for name, path in folders.items():
            if not _LOOSE_VERSION_NAME.fullmatch(name):
                continue
            rejected = name.endswith(REJECTED_SUFFIX)
            number = int(name[:-len(REJECTED_SUFFIX)] if rejected else name)
            if _VERSION_NAME.fullmatch(name):
                manifest, problem = read_manifest(path)
            else:
                manifest, problem = {}, (f"folder name {name} is not a version number as the "
                                         "store writes it (a leading zero): rename it")
            found.append(Version(number, path, rejected, manifest, problem))
        return sorted(found, key=lambda version: (version.number, version.rejected))

    def serving_candidates(self) -> list[Version]:
        """Versions a server may load, newest first."""
        return [version for version in reversed(self.versions()) if not version.rejected]

    def publish(self, model_dir: str, manifest: dict[str, Any],
                signing_key: Optional[signing.SigningKey] = None, keep_versions: int = 0,
                extra_dirs: Optional[dict[str, str]] = None) -> Version:
        """Copies `model_dir` in as a new version with its manifest (signed when a key is given).

        Args:
          manifest: what to record about the model (metrics, span, lineage); the version number,
            the time and the SHA-256 of every file are added here.
          keep_versions: afterwards delete all but this many newest good versions (0 keeps all).
          extra_dirs: folders published with the model, by their name inside the version (the
            TFLite variants as `tflite`); the manifest's sums cover their files too.
        """
        filesystem.makedirs(self.model_dir)
        with filesystem.exclusive_lock(self.model_dir):
            self._finish_pending_operation()
            self._remove_leftovers()
            existing = [version.number for version in self.versions()]
            number = max([int(time.time()), *[value + 1 for value in existing]])
            staging_name = _staging_name(number)
            staging = filesystem.join(self.model_dir, staging_name)
            filesystem.copy_tree(model_dir, staging)
            for name, source in (extra_dirs or {}).items():
                filesystem.copy_tree(source, filesystem.join(staging, name))
            record = {**manifest, "model_name": os.path.basename(self.model_dir),
                      "version": number, "published_at": _now(), "files": _file_sums(staging)}
            _write_manifest(staging, record, signing_key)
            self._commit(renames=[(staging_name, str(number))], history=[
                {"event": "published", "version": number, "signed": bool(signing_key)}])
            if keep_versions:
                self._apply_retention(keep_versions)
        return Version(number, filesystem.join(self.model_dir, str(number)), False, record)

    def amend(self, number: int, extra_dirs: dict[str, str], manifest_update: dict[str, Any],
              signing_key: Optional[signing.SigningKey] = None,
              verify_key: Optional[signing.VerifyKey] = None) -> Version:
        """Adds folders to published version `number` (replacing ones of the same name), with
        `manifest_update` in its manifest, the sums of every file again and a new signature.

        The new version is written aside whole, then swapped in by one committed operation, so
        readers see the old version or the new one, never a mix. The version must verify first
        (with `verify_key` when given); a signed version needs `signing_key`, or it would stop
        verifying.
        """
        if filesystem.is_remote(self.model_dir):
            # A folder rename there copies object by object: a crash could leave neither.
            raise StoreError(f"{self.model_dir} is on an object store, where versions cannot be "
                             "changed in one step: run the pipeline again to publish a new "
                             "version with them")
        if not filesystem.isdir(self.model_dir):
            raise StoreError(f"version {number} is not a published version in {self.model_dir}")
        with filesystem.exclusive_lock(self.model_dir):
            self._finish_pending_operation()
            self._remove_leftovers()
            version = self.published_version(number)
            if version.signed and not signing_key:
                raise StoreError(f"version {number} is signed: set serving.signing_key_file (or "
                                 "TEXTCLF_SIGNING_KEY) so that its new manifest is signed too")
            # A signed version is checked against its signature whatever the caller passed:
            # re-signing files edited with their sums would otherwise bless them.
            try:
                verify_version(version, verify_key or (
                    signing_key.verify_key() if version.signed else None))
            except VersionRefused as error:
                raise StoreError(f"version {number} cannot change: {error}") from error
            staging_name = _staging_name(number)
            staging = filesystem.join(self.model_dir, staging_name)
            for relative, full in filesystem.files_below(version.path):
                if relative not in _STORE_FILES and relative.split("/")[0] not in extra_dirs:
                    filesystem.makedirs(posixpath.dirname(filesystem.join(staging, relative)))
                    filesystem.copy_file(full, filesystem.join(staging, relative))
            for name, source in extra_dirs.items():
                filesystem.copy_tree(source, filesystem.join(staging, name))
            record = {**version.manifest, **manifest_update, "amended_at": _now(),
                      "files": _file_sums(staging)}
            _write_manifest(staging, record, signing_key)
            retired = f"{DELETING_PREFIX}{number}-{uuid.uuid4().hex}"
            self._commit(replacements=[(staging_name, str(number), retired)], history=[
                {"event": "amended", "version": number, "added": sorted(extra_dirs),
                 "signed": bool(signing_key)}])
        return Version(number, filesystem.join(self.model_dir, str(number)), False, record)

    def published_version(self, number: int) -> Version:
        """Version `number`, unless it is missing or rejected (StoreError)."""
        for version in self.versions():
            if version.number == number and not version.rejected:
                return version
        raise StoreError(f"version {number} is not a published version in {self.model_dir}; "
                         "`textclf models list` shows them")

    def rollback(self, to_version: Optional[int] = None, reason: str = "rolled back",
                 verify_key: Optional[signing.VerifyKey] = None) -> Version:
        """Puts `to_version` (default: the version before the one servers serve) back in service.

        Every good version newer than it is renamed `<version>.rejected`: kept for inspection,
        never loaded again unless a later rollback names it. The target must pass verification
        (with `verify_key` when given); unreadable and refused versions are never picked as the
        default target. All renames happen, or none.
        """
        # A store with no model folder yet has nothing to change, and no folder to lock.
        with filesystem.exclusive_lock(self.model_dir) if filesystem.isdir(self.model_dir) \
                else contextlib.nullcontext():
            self._finish_pending_operation()
            versions = self.versions()
            target = self._rollback_target(versions, to_version, verify_key)
            renames, history = [], []
            for version in versions:
                if not version.rejected and version.number > target.number:
                    renames.append((str(version.number), f"{version.number}{REJECTED_SUFFIX}"))
                    history.append({"event": "rejected", "version": version.number,
                                    "reason": reason})
            if target.rejected:
                renames.append((f"{target.number}{REJECTED_SUFFIX}", str(target.number)))
                history.append({"event": "restored", "version": target.number, "reason": reason})
            names = {os.path.basename(version.path) for version in versions}
            taken = [new for _, new in renames if new in names]
            if taken:
                raise StoreError(f"cannot roll back: {taken[0]} already exists in "
                                 f"{self.model_dir}; move it away and run the rollback again")
            self._commit(renames=renames, history=history)
        return dataclasses.replace(target, rejected=False,
                                   path=filesystem.join(self.model_dir, str(target.number)))

    def note(self, event: dict[str, Any]) -> None:
        """Records an event that moves no folder (a rollout's promotion) in the history."""
        with filesystem.exclusive_lock(self.model_dir):
            self._finish_pending_operation()
            self._commit(history=[event])

    def history(self) -> list[dict[str, Any]]:
        """Every recorded event, oldest first; a line that is not a JSON object (a write cut
        short by a crash) is skipped with a warning."""
        path = filesystem.join(self.model_dir, HISTORY_FILE)
        try:
            content = filesystem.read_bytes(path, limit=1 << 30)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise StoreError(f"cannot read {path}: {error}") from error
        events = []
        for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                event = None
            if not isinstance(event, dict):
                logger.warning("%s line %d is not a JSON object (a write cut short?); skipped",
                               path, number)
                continue
            events.append(event)
        return events

    def _rollback_target(self, versions: list[Version], to_version: Optional[int],
                         verify_key: Optional[signing.VerifyKey]) -> Version:
        if to_version is None:
            servable = []
            for version in reversed(versions):
                if not version.rejected and _verifies(version, verify_key):
                    servable.append(version)
                    if len(servable) == 2:
                        return version
            raise StoreError(f"no earlier good version to roll back to in {self.model_dir} "
                             f"(servable versions: {[version.number for version in servable]})")
        matches = [version for version in versions if version.number == to_version]
        if not matches:
            raise StoreError(f"version {to_version} is not in {self.model_dir}; "
                             f"`textclf models list` shows the versions")
        target = matches[0]
        try:
            verify_version(target, verify_key)
        except VersionRefused as error:
            raise StoreError(f"version {to_version} cannot serve: {error}") from error
        return target

    def _apply_retention(self, keep_versions: int) -> None:
        good = [version for version in self.versions()
                if not version.rejected and not version.problem]
        old = good[:-keep_versions]
        if old:
            self._commit(deletes=[str(version.number) for version in old], history=[
                {"event": "deleted", "version": version.number,
                 "reason": f"keeping the newest {keep_versions}"} for version in old])

    def _commit(self, renames: Optional[list[tuple[str, str]]] = None,
                deletes: Optional[list[str]] = None,
                history: Optional[list[dict[str, Any]]] = None,
                replacements: Optional[list[tuple[str, str, str]]] = None) -> None:
        """Writes the operation whole (from then on it has happened), then applies it."""
        operation = _Operation(uuid.uuid4().hex, renames or [], deletes or [], history or [],
                               replacements or [])
        filesystem.write_bytes(self._operation_path(), json.dumps(
            dataclasses.asdict(operation), sort_keys=True).encode())
        self._apply(operation)

    def _apply(self, operation: _Operation) -> None:
        """Applies a committed operation; safe to repeat after a crash at any point in it."""
        for source, target in operation.renames:
            source_path = filesystem.join(self.model_dir, source)
            if filesystem.exists(source_path):
                filesystem.rename(source_path, filesystem.join(self.model_dir, target))
        for staging, name, retired in operation.replacements:
            staging_path = filesystem.join(self.model_dir, staging)
            retired_path = filesystem.join(self.model_dir, retired)
            if filesystem.exists(staging_path):
                if filesystem.exists(filesystem.join(self.model_dir, name)):
                    filesystem.rename(filesystem.join(self.model_dir, name), retired_path)
                filesystem.rename(staging_path, filesystem.join(self.model_dir, name))
            if filesystem.exists(retired_path):
                filesystem.rmtree(retired_path)
        for name in operation.deletes:
            path = filesystem.join(self.model_dir, name)
            if filesystem.exists(path):
                # Renamed away first, so a delete cut short leaves no half version behind.
                doomed = filesystem.join(self.model_dir, f"{DELETING_PREFIX}{name}-{operation.id}")
                filesystem.rename(path, doomed)
                filesystem.rmtree(doomed)
        events = self.history()
        if not any(event.get("operation") == operation.id for event in events):
            events += [{**event, "at": _now(), "operation": operation.id}
                       for event in operation.history]
            filesystem.write_bytes(
                filesystem.join(self.model_dir, HISTORY_FILE),
                "".join(json.dumps(event, sort_keys=True) + "\n" for event in events).encode())
        filesystem.remove(self._operation_path())

    def _operation_path(self) -> str:
        return filesystem.join(self.model_dir, OPERATION_FILE)

    def _pending_operation(self, strict: bool) -> Optional[_Operation]:
        """The committed, unapplied operation, if any.

        An unreadable one (nothing the store writes) stops a writer (`strict`) with the fix;
        readers warn and list the folders as they are.
        """
        try:
            content = filesystem.read_bytes(self._operation_path(), MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            return None
        except OSError as error:
            problem = str(error)
        else:
            try:
                record = json.loads(content)
                return _Operation(str(record["id"]),
                                  [(str(source), str(target)) for source, target in
                                   record["renames"]],
                                  [str(name) for name in record["deletes"]],
                                  [dict(event) for event in record["history"]],
                                  [(str(staging), str(name), str(retired))
                                   for staging, name, retired in record.get("replacements", [])])
            except (ValueError, RecursionError, KeyError, TypeError) as error:
                problem = f"not an operation record ({error})"
        message = (f"{self._operation_path()} cannot be read: {problem}. It records a store "
                   "change that did not finish: check `textclf models list`, then delete it")
        if strict:
            raise StoreError(message)
        logger.warning("%s; listing the folders as they are", message)
        return None

    def _finish_pending_operation(self) -> None:
        pending = self._pending_operation(strict=True)
        if pending:
            logger.warning("finishing a store change a crash interrupted (%s)", pending.id)
            self._apply(pending)

    def _remove_leftovers(self) -> None:
        """Deletes what crashed writers left: staging folders of pushes whose process is gone,
        deletes cut short, temporary files of writes cut short."""
        for name in filesystem.listdir(self.model_dir):
            path = filesystem.join(self.model_dir, name)
            if name.startswith(STAGING_PREFIX) and not _process_alive(name.rsplit("-", 1)[-1]) \
                    or name.startswith(DELETING_PREFIX):
                filesystem.rmtree(path)
            elif filesystem.TEMPORARY_INFIX in name and not _process_alive(
                    name.rsplit("-", 1)[-1]):
                filesystem.remove(path)


def read_manifest(version_path: str) -> tuple[dict[str, Any], str]:
    """(manifest, "") when the folder's manifest is usable, else ({}, why it is not)."""
    path = filesystem.join(version_path, MANIFEST_FILE)
    try:
        if not filesystem.isdir(version_path):
            return {}, "is a file, not a version folder"
        content = filesystem.read_bytes(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        return {}, f"has no {MANIFEST_FILE} (copied in by hand, not published by the store?)"
    except IsADirectoryError:
        return {}, f"{MANIFEST_FILE} is a folder, not a file"
    except OSError as error:
        return {}, f"{MANIFEST_FILE} cannot be read: {error.strerror or error}"
    if content[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return {}, f"{MANIFEST_FILE} is UTF-16 (saved by a Windows editor?); the store writes UTF-8"
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        return {}, (f"{MANIFEST_FILE} is not UTF-8 (byte 0x{content[error.start]:02x} at offset "
                    f"{error.start})")
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as error:
        return {}, f"{MANIFEST_FILE} is not JSON: {error}"
    if not isinstance(manifest, dict):
        return {}, f"{MANIFEST_FILE} holds a JSON {type(manifest).__name__}, not an object"
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(name, str) and isinstance(digest, str) for name, digest in files.items()):
        return {}, f"{MANIFEST_FILE} has no \"files\" object of SHA-256 sums"
    return manifest, ""


def verify_version(version: Version, verify_key: Optional[signing.VerifyKey]) -> None:
    """Raises VersionRefused unless every file matches the manifest (and, with a key, the
    signature), and the manifest is this folder's."""
    if version.problem:
        raise VersionRefused(f"version {version.number} {version.problem}")
    try:
        if verify_key:
            signature_path = filesystem.join(version.path, SIGNATURE_FILE)
            if not filesystem.exists(signature_path):
                raise VersionRefused(f"version {version.number} is not signed ({SIGNATURE_FILE} "
                                     "missing) and serving.verify_key_file is set")
            manifest_bytes = filesystem.read_bytes(
                filesystem.join(version.path, MANIFEST_FILE), MAX_MANIFEST_BYTES)
            signature = filesystem.read_bytes(signature_path, _MAX_SIGNATURE_BYTES)
            if not verify_key.verify(manifest_bytes, signature):
                raise VersionRefused(f"version {version.number}: the signature does not match "
                                     f"{MANIFEST_FILE} (tampered, or signed with another key)")
        actual = _file_sums(version.path)
    except OSError as error:
        raise VersionRefused(f"version {version.number} cannot be read: {error}") from error
    expected = version.manifest["files"]
    changed = sorted(name for name in set(actual) | set(expected)
                     if actual.get(name) != expected.get(name))
    if changed:
        raise VersionRefused(f"version {version.number}: {len(changed)} file(s) differ from the "
                             f"manifest's SHA-256 sums, e.g. {changed[0]}")
    if version.manifest.get("version") != version.number:
        raise VersionRefused(f"version {version.number}: its {MANIFEST_FILE} is version "
                             f"{version.manifest.get('version')!r}'s (a folder copied or renamed "
                             "by hand)")


def _verifies(version: Version, verify_key: Optional[signing.VerifyKey]) -> bool:
    try:
        verify_version(version, verify_key)
    except VersionRefused:
        return False
    return True


def _staging_name(number: int) -> str:
    """The folder a version is written in before it is renamed into place (this process's)."""
    return f"{STAGING_PREFIX}{number}-{os.getpid()}"


def _write_manifest(folder: str, record: dict[str, Any],
                    signing_key: Optional[signing.SigningKey]) -> None:
    """`record` as the folder's manifest, and its signature when a key is given."""
    manifest_bytes = json.dumps(record, indent=2, sort_keys=True).encode()
    filesystem.write_bytes(filesystem.join(folder, MANIFEST_FILE), manifest_bytes)
    if signing_key:
        filesystem.write_bytes(filesystem.join(folder, SIGNATURE_FILE),
                               signing_key.sign(manifest_bytes))


def _file_sums(path: str) -> dict[str, str]:
    """SHA-256 of every file below `path` but the store's own, by relative POSIX path."""
    sums = {}
    for relative, full in filesystem.files_below(path):
        if relative in _STORE_FILES:
            continue
        digest = hashlib.sha256()
        with filesystem.open_binary(full) as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        sums[relative] = digest.hexdigest()
    return sums


def _process_alive(pid_text: str) -> bool:
    if not (pid_text.isascii() and pid_text.isdigit()):
        return False
    try:
        os.kill(int(pid_text), 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: no pid is that large
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
