"""The versioned store: atomic publish, manifests, signatures, retention, rollback, killed pushes."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from serving import signing
from serving.store import (DELETING_PREFIX, REJECTED_SUFFIX, STAGING_PREFIX, ModelStore,
                           StoreError, VersionRefused, verify_version)
from tests.conftest import REPO_ROOT
from tests.serving.store_faults import flip_byte


def test_publish_writes_a_manifest_with_every_file_and_leaves_no_staging(tmp_path, model_dir):
    store = ModelStore(str(tmp_path / "store"), "reviews")

    version = store.publish(str(model_dir), {"data_span": 3, "metrics": {"accuracy": 0.9}})

    assert [listed.number for listed in store.versions()] == [version.number]
    assert sorted(version.manifest["files"]) == [
        "saved_model.pb", "variables/variables.data-00000-of-00001"]
    assert version.manifest["data_span"] == 3 and version.manifest["model_name"] == "reviews"
    assert not [name for name in os.listdir(store.model_dir) if name.startswith(STAGING_PREFIX)]
    verify_version(version, verify_key=None)
    assert store.history()[-1]["event"] == "published"


def test_signature_is_checked_and_one_changed_byte_is_refused(tmp_path, model_dir, keys):
    signing_key, verify_key = keys
    store = ModelStore(str(tmp_path / "store"), "reviews")
    signed = store.publish(str(model_dir), {}, signing_key=signing_key)
    verify_version(signed, verify_key)

    flip_byte(pathlib.Path(signed.path, "variables", "variables.data-00000-of-00001"), 100)
    with pytest.raises(VersionRefused, match="differ from the manifest"):
        verify_version(store.versions()[-1], verify_key)

    unsigned = store.publish(str(model_dir), {})
    with pytest.raises(VersionRefused, match="not signed"):
        verify_version(unsigned, verify_key)

    signing.generate_key_pair(tmp_path / "other.pem", tmp_path / "other.pub")
    other_key = signing.load_signing_key(str(tmp_path / "other.pem"))
    with open(os.path.join(unsigned.path, "manifest.json"), "rb") as handle, \
            open(os.path.join(unsigned.path, "manifest.sig"), "wb") as signature:
        signature.write(other_key.sign(handle.read()))
    with pytest.raises(VersionRefused, match="signature does not match"):
        verify_version(store.versions()[-1], verify_key)


def test_retention_keeps_the_newest_good_versions(tmp_path, model_dir):
    store = ModelStore(str(tmp_path / "store"), "reviews")
    numbers = [store.publish(str(model_dir), {}, keep_versions=2).number for _ in range(4)]

    assert [version.number for version in store.versions()] == numbers[-2:]
    assert [entry["version"] for entry in store.history() if entry["event"] == "deleted"] == \
        numbers[:2]


def test_rollback_marks_newer_versions_rejected_and_can_restore_them(tmp_path, model_dir):
    store = ModelStore(str(tmp_path / "store"), "reviews")
    first, second, third = (store.publish(str(model_dir), {}).number for _ in range(3))

    assert store.rollback(reason="bad predictions").number == second
    assert store.serving_candidates()[0].number == second
    assert os.path.isdir(os.path.join(store.model_dir, f"{third}{REJECTED_SUFFIX}"))

    assert store.rollback(to_version=first).number == first
    assert [version.number for version in store.serving_candidates()] == [first]

    restored = store.rollback(to_version=third)
    assert restored.number == third and not restored.rejected
    assert [version.number for version in store.serving_candidates()] == [third, first]
    assert [(entry["event"], entry["version"]) for entry in store.history()][3:] == [
        ("rejected", third), ("rejected", second), ("restored", third)]


def test_rollback_skips_versions_that_would_be_refused(tmp_path, model_dir, keys):
    signing_key, verify_key = keys
    store = ModelStore(str(tmp_path / "store"), "reviews")
    first = store.publish(str(model_dir), {}, signing_key=signing_key).number
    store.publish(str(model_dir), {})  # unsigned: a server with the verify key refuses it
    third = store.publish(str(model_dir), {}, signing_key=signing_key).number

    assert store.rollback(verify_key=verify_key).number == first
    assert [version.number for version in store.versions() if version.rejected][-1] == third


def test_rollback_without_an_earlier_version_says_so(tmp_path, model_dir):
    store = ModelStore(str(tmp_path / "store"), "reviews")
    store.publish(str(model_dir), {})
    with pytest.raises(StoreError, match="no earlier good version"):
        store.rollback()
    with pytest.raises(StoreError, match="is not in"):
        store.rollback(to_version=1)


_SLOW_PUSH = """
import sys, time
from serving import filesystem, store
copy = filesystem.copy_file
def slow_copy(source, target):
    copy(source, target)
    time.sleep(30)
filesystem.copy_file = slow_copy
store.ModelStore(sys.argv[1], "reviews").publish(sys.argv[2], {})
"""


def test_a_push_killed_midway_leaves_no_visible_version(tmp_path, model_dir):
    store = ModelStore(str(tmp_path / "store"), "reviews")
    good = store.publish(str(model_dir), {})
    push = subprocess.Popen([sys.executable, "-c", _SLOW_PUSH, str(tmp_path / "store"),
                             str(model_dir)], cwd=REPO_ROOT)
    deadline = time.monotonic() + 60
    staging = []
    while not staging and time.monotonic() < deadline:
        staging = [name for name in os.listdir(store.model_dir)
                   if name.startswith(STAGING_PREFIX)
                   and any(files for _, _, files in os.walk(os.path.join(store.model_dir, name)))]
        time.sleep(0.1)
    assert staging, "the push never started copying"
    push.send_signal(signal.SIGKILL)
    push.wait()

    assert [version.number for version in store.versions()] == [good.number]
    assert store.serving_candidates()[0].number == good.number

    store.publish(str(model_dir), {})
    assert not [name for name in os.listdir(store.model_dir) if name.startswith(STAGING_PREFIX)]
    assert store.history()[-1]["event"] == "published"


@pytest.mark.parametrize("key_content, message", [
    (None, "cannot be read"),
    (b"not a key", "is not a PEM private key"),
])
def test_a_bad_signing_key_stops_the_run_before_anything_runs(tmp_path, key_content, message):
    """The real `textclf run`: exit 2 and one line, before any component (no outputs at all)."""
    key_file = tmp_path / "private.pem"
    if key_content is not None:
        key_file.write_bytes(key_content)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--output-dir", str(tmp_path / "outputs"),
         "--set", f"serving.signing_key_file={key_file}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr and "serving.signing_key_file" in result.stderr
    assert not (tmp_path / "outputs").exists()


def _extra(tmp_path, name: str, content: bytes):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model-int8.tflite").write_bytes(content)
    return folder


def test_folders_published_with_the_model_are_covered_by_the_manifest(tmp_path, model_dir, keys):
    """The TFLite variants travel in the version: one changed byte in one refuses it."""
    signing_key, verify_key = keys
    store = ModelStore(str(tmp_path / "store"), "reviews")
    version = store.publish(str(model_dir), {}, signing_key=signing_key,
                            extra_dirs={"tflite": str(_extra(tmp_path, "edge", b"tflite" * 50))})
    assert "tflite/model-int8.tflite" in version.manifest["files"]
    verify_version(version, verify_key)

    flip_byte(pathlib.Path(version.path, "tflite", "model-int8.tflite"))
    with pytest.raises(VersionRefused, match="differ from the manifest.*tflite/model-int8"):
        verify_version(store.versions()[-1], verify_key)


def test_amend_adds_folders_to_a_published_version_and_signs_it_again(tmp_path, model_dir, keys):
    signing_key, verify_key = keys
    store = ModelStore(str(tmp_path / "store"), "reviews")
    first = store.publish(str(model_dir), {"data_span": 3}, signing_key=signing_key,
                          extra_dirs={"tflite": str(_extra(tmp_path, "old", b"old" * 10))})
    newer = store.publish(str(model_dir), {}, signing_key=signing_key)

    amended = store.amend(first.number, {"tflite": str(_extra(tmp_path, "new", b"new" * 10))},
                          {"tflite": {"shipped": ["int8"]}}, signing_key=signing_key,
                          verify_key=verify_key)

    assert amended.number == first.number
    on_disk = store.versions()[0]
    verify_version(on_disk, verify_key)
    assert on_disk.manifest["tflite"] == {"shipped": ["int8"]}
    assert on_disk.manifest["data_span"] == 3 and "amended_at" in on_disk.manifest
    assert open(os.path.join(on_disk.path, "tflite", "model-int8.tflite"), "rb").read() == \
        b"new" * 10
    assert on_disk.manifest["files"]["saved_model.pb"] == first.manifest["files"]["saved_model.pb"]
    # The other version is untouched; nothing is left aside; the history says what happened.
    assert [version.number for version in store.serving_candidates()] == [newer.number,
                                                                          first.number]
    assert not [name for name in os.listdir(store.model_dir)
                if name.startswith((STAGING_PREFIX, DELETING_PREFIX))]
    assert store.history()[-1] == {**store.history()[-1], "event": "amended",
                                   "version": first.number, "added": ["tflite"], "signed": True}


def test_amend_refuses_what_would_leave_a_version_that_no_longer_verifies(tmp_path, model_dir,
                                                                          keys):
    signing_key, verify_key = keys
    store = ModelStore(str(tmp_path / "store"), "reviews")
    signed = store.publish(str(model_dir), {}, signing_key=signing_key)
    extra = {"tflite": str(_extra(tmp_path, "edge", b"x"))}
    with pytest.raises(StoreError, match=f"version {signed.number} is signed: set "
                                         "serving.signing_key_file"):
        store.amend(signed.number, extra, {})
    with pytest.raises(StoreError, match="version 12 is not a published version"):
        store.amend(12, extra, {}, signing_key=signing_key)
    weights = os.path.join(signed.path, "variables", "variables.data-00000-of-00001")
    open(weights, "ab").write(b"tampered")
    with pytest.raises(StoreError, match=f"version {signed.number} cannot change: .*differ"):
        store.amend(signed.number, extra, {}, signing_key=signing_key, verify_key=verify_key)
