"""The versioned model store the Pusher writes and the model server reads.

Layout, TF Serving compatible (servers load only the numeric folders):
  <root>/<model>/<version>/                SavedModel + manifest.json (+ manifest.sig when signed)
  <root>/<model>/<version>.rejected/       a version taken out of service by a rollback (kept)
  <root>/<model>/.staging-<version>-<pid>/ a push in progress, invisible to servers
  <root>/<model>/history.jsonl             one line per publish, rejection and retention delete

A version is published by writing it aside and renaming it into place, so a push killed halfway
leaves only a staging folder that no server lists and the next push removes. On object stores,
where a folder rename is not atomic, the manifest is the commit record instead: the server only
loads a version whose files all match the SHA-256 sums its manifest lists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import time
from typing import Any, Optional

import tensorflow as tf

from serving import signing

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
HISTORY_FILE = "history.jsonl"
REJECTED_SUFFIX = ".rejected"
STAGING_PREFIX = ".staging-"
# Files the store writes beside a model's own files; the manifest's sums cover everything else.
_STORE_FILES = (MANIFEST_FILE, SIGNATURE_FILE)


class StoreError(RuntimeError):
    """The store cannot do what was asked (no such version, nothing to roll back to)."""


class VersionRefused(StoreError):
    """A version's files do not match its manifest, or its signature is missing or wrong."""


@dataclasses.dataclass(frozen=True)
class Version:
    """One published version as the store lists it."""

    number: int
    path: str
    rejected: bool
    manifest: dict[str, Any]

    @property
    def signed(self) -> bool:
        return tf.io.gfile.exists(posixpath.join(self.path, SIGNATURE_FILE))


class ModelStore:
    """The versions of one model under `<root>/<model_name>/`."""

    def __init__(self, root: str, model_name: str):
        self.model_dir = posixpath.join(root.rstrip("/"), model_name)

    def versions(self) -> list[Version]:
        """Every published version, oldest first, rejected ones included."""
        if not tf.io.gfile.isdir(self.model_dir):
            return []
        found = []
        for entry in tf.io.gfile.listdir(self.model_dir):
            name = entry.rstrip("/")
            number_text = name[:-len(REJECTED_SUFFIX)] if name.endswith(REJECTED_SUFFIX) else name
            if not number_text.isdigit():
                continue
            path = posixpath.join(self.model_dir, name)
            found.append(Version(int(number_text), path, name.endswith(REJECTED_SUFFIX),
                                 _read_manifest(path)))
        return sorted(found, key=lambda version: version.number)

    def serving_candidates(self) -> list[Version]:
        """Versions a server may load, newest first."""
        return [version for version in reversed(self.versions()) if not version.rejected]

    def publish(self, model_dir: str, manifest: dict[str, Any],
                signing_key: Optional[signing.SigningKey] = None, keep_versions: int = 0
                ) -> Version:
        """Copies `model_dir` in as a new version with its manifest (signed when a key is given).

        Args:
          manifest: what to record about the model (metrics, span, lineage); the version number,
            the time and the SHA-256 of every file are added here.
          keep_versions: afterwards delete all but this many newest good versions (0 keeps all).
        """
        tf.io.gfile.makedirs(self.model_dir)
        self._remove_abandoned_staging()
        existing = [version.number for version in self.versions()]
        number = max([int(time.time()), *[value + 1 for value in existing]])
        staging = posixpath.join(self.model_dir, f"{STAGING_PREFIX}{number}-{os.getpid()}")
        _copy_tree(model_dir, staging)
        record = {**manifest, "model_name": posixpath.basename(self.model_dir),
                  "version": number, "published_at": _now(), "files": _file_sums(staging)}
        manifest_bytes = json.dumps(record, indent=2, sort_keys=True).encode()
        with tf.io.gfile.GFile(posixpath.join(staging, MANIFEST_FILE), "wb") as handle:
            handle.write(manifest_bytes)
        if signing_key:
            with tf.io.gfile.GFile(posixpath.join(staging, SIGNATURE_FILE), "wb") as handle:
                handle.write(signing_key.sign(manifest_bytes))
        final = posixpath.join(self.model_dir, str(number))
        tf.io.gfile.rename(staging, final)
        self._record("published", number, signed=bool(signing_key))
        if keep_versions:
            self._apply_retention(keep_versions)
        return Version(number, final, False, record)

    def rollback(self, to_version: Optional[int] = None, reason: str = "rolled back",
                 verify_key: Optional[signing.VerifyKey] = None) -> Version:
        """Puts `to_version` (default: the version before the one servers serve) back in service.

        Every good version newer than it is renamed `<version>.rejected`: kept for inspection,
        never loaded again unless a later rollback names it. Versions that fail verification
        (with `verify_key` when given) are never picked as the default target.
        """
        versions = self.versions()
        good = [version for version in versions if not version.rejected]
        if to_version is None:
            servable = [version for version in good if _verifies(version, verify_key)]
            if len(servable) < 2:
                raise StoreError(f"no earlier good version to roll back to in {self.model_dir} "
                                 f"(servable versions: {[version.number for version in servable]})")
            target = servable[-2]
        else:
            matches = [version for version in versions if version.number == to_version]
            if not matches:
                raise StoreError(f"version {to_version} is not in {self.model_dir}; "
                                 f"`textclf models list` shows the versions")
            target = matches[0]
        for version in good:
            if version.number > target.number:
                tf.io.gfile.rename(version.path, version.path + REJECTED_SUFFIX)
                self._record("rejected", version.number, reason=reason)
        if target.rejected:
            restored = posixpath.join(self.model_dir, str(target.number))
            tf.io.gfile.rename(target.path, restored)
            self._record("restored", target.number, reason=reason)
            target = dataclasses.replace(target, path=restored, rejected=False)
        return target

    def history(self) -> list[dict[str, Any]]:
        path = posixpath.join(self.model_dir, HISTORY_FILE)
        if not tf.io.gfile.exists(path):
            return []
        with tf.io.gfile.GFile(path) as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def _apply_retention(self, keep_versions: int) -> None:
        good = [version for version in self.versions() if not version.rejected]
        for version in good[:-keep_versions]:
            tf.io.gfile.rmtree(version.path)
            self._record("deleted", version.number, reason=f"keeping the newest {keep_versions}")

    def _remove_abandoned_staging(self) -> None:
        """Deletes staging folders of pushes whose process is gone (killed mid-push)."""
        for entry in tf.io.gfile.listdir(self.model_dir):
            name = entry.rstrip("/")
            if name.startswith(STAGING_PREFIX) and not _process_alive(name.rsplit("-", 1)[-1]):
                tf.io.gfile.rmtree(posixpath.join(self.model_dir, name))

    def _record(self, event: str, version: int, **details: Any) -> None:
        path = posixpath.join(self.model_dir, HISTORY_FILE)
        lines = self.history() + [{"event": event, "version": version, "at": _now(), **details}]
        # Rewritten whole: GFile cannot append on object stores.
        with tf.io.gfile.GFile(path, "w") as handle:
            handle.write("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))


def verify_version(version: Version, verify_key: Optional[signing.VerifyKey]) -> None:
    """Raises VersionRefused unless every file matches the manifest (and, with a key, the signature)."""
    if not version.manifest:
        raise VersionRefused(f"version {version.number} has no readable {MANIFEST_FILE}")
    if verify_key:
        signature_path = posixpath.join(version.path, SIGNATURE_FILE)
        if not tf.io.gfile.exists(signature_path):
            raise VersionRefused(f"version {version.number} is not signed ({SIGNATURE_FILE} "
                                 "missing) and serving.verify_key_file is set")
        with tf.io.gfile.GFile(posixpath.join(version.path, MANIFEST_FILE), "rb") as handle:
            manifest_bytes = handle.read()
        with tf.io.gfile.GFile(signature_path, "rb") as handle:
            if not verify_key.verify(manifest_bytes, handle.read()):
                raise VersionRefused(f"version {version.number}: the signature does not match "
                                     f"{MANIFEST_FILE} (tampered, or signed with another key)")
    actual = _file_sums(version.path)
    expected = version.manifest.get("files", {})
    changed = sorted(name for name in set(actual) | set(expected)
                     if actual.get(name) != expected.get(name))
    if changed:
        raise VersionRefused(f"version {version.number}: {len(changed)} file(s) differ from the "
                             f"manifest's SHA-256 sums, e.g. {changed[0]}")


def _verifies(version: Version, verify_key: Optional[signing.VerifyKey]) -> bool:
    try:
        verify_version(version, verify_key)
    except VersionRefused:
        return False
    return True


def _read_manifest(path: str) -> dict[str, Any]:
    manifest_path = posixpath.join(path, MANIFEST_FILE)
    try:
        with tf.io.gfile.GFile(manifest_path) as handle:
            return json.loads(handle.read())
    except (tf.errors.NotFoundError, json.JSONDecodeError):
        return {}


def _copy_tree(source: str, target: str) -> None:
    for folder, _, files in tf.io.gfile.walk(source):
        relative = posixpath.relpath(folder, source)
        target_folder = posixpath.normpath(posixpath.join(target, relative))
        tf.io.gfile.makedirs(target_folder)
        for name in files:
            _copy_file(posixpath.join(folder, name), posixpath.join(target_folder, name))


def _copy_file(source: str, target: str) -> None:
    tf.io.gfile.copy(source, target, overwrite=True)


def _file_sums(path: str) -> dict[str, str]:
    """SHA-256 of every file below `path` but the store's own, by relative POSIX path."""
    sums = {}
    for folder, _, files in tf.io.gfile.walk(path):
        for name in files:
            relative = posixpath.relpath(posixpath.join(folder, name), path)
            if relative in _STORE_FILES:
                continue
            digest = hashlib.sha256()
            with tf.io.gfile.GFile(posixpath.join(folder, name), "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            sums[relative] = digest.hexdigest()
    return sums


def _process_alive(pid_text: str) -> bool:
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
