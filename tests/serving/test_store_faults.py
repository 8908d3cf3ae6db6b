"""The store under faults: every kind of corrupt manifest, torn history, operations cut short.

One bad folder is refused alone and loudly; every other version keeps working; a store change
cut short at any point is either wholly done or not done at all, for readers and writers alike.
"""

import json
import logging
import os

import pytest

from pipeline import cli
from serving import filesystem
from serving.store import (HISTORY_FILE, OPERATION_FILE, REJECTED_SUFFIX, ModelStore, StoreError,
                           VersionRefused, verify_version)
from tests.serving.store_faults import CORRUPTIONS, corrupt

MODEL = "reviews"


def _store(tmp_path, model_dir, count=3):
    store = ModelStore(str(tmp_path / "out" / "serving_models"), MODEL)
    numbers = [store.publish(str(model_dir), {"data_span": index}).number
               for index in range(count)]
    return store, numbers


def _models(tmp_path, capsys, *args):
    code = cli.main(["models", *args, "--output-dir", str(tmp_path / "out"),
                     "--set", f"model_name={MODEL}"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_corrupt_manifest_is_listed_unreadable_and_rollback_works_over_the_others(
        tmp_path, model_dir, capsys, kind):
    store, (first, broken, newest) = _store(tmp_path, model_dir)
    phrase = corrupt(os.path.join(store.model_dir, str(broken)), kind)

    by_number = {version.number: version for version in store.versions()}
    assert phrase in by_number[broken].problem and by_number[broken].manifest == {}
    with pytest.raises(VersionRefused, match="manifest"):
        verify_version(by_number[broken], None)
    code, listing, _ = _models(tmp_path, capsys, "list")
    assert code == 0
    [line] = [line for line in listing.splitlines() if line.startswith(f"{broken}\t")]
    assert line.startswith(f"{broken}\tunreadable\t") and phrase in line
    assert f"{newest}\tverified\t" in listing and f"{first}\tverified\t" in listing

    code, _, error = _models(tmp_path, capsys, "rollback", "--to", str(broken))
    assert code == 2 and f"version {broken} cannot serve" in error
    code, out, _ = _models(tmp_path, capsys, "rollback")
    assert code == 0 and f"version {first} of {MODEL} serves again" in out
    assert [version.number for version in store.serving_candidates()] == [first]
    assert {version.number for version in store.versions() if version.rejected} == {
        broken, newest}


def test_a_torn_history_line_is_skipped_with_a_warning_and_rollback_completes(
        tmp_path, model_dir, caplog):
    store, (first, second, third) = _store(tmp_path, model_dir)
    with open(os.path.join(store.model_dir, HISTORY_FILE), "ab") as history:
        history.write(b'{"event": "rejected", "vers')  # a crash while appending

    with caplog.at_level(logging.WARNING, logger="textclf.serving"):
        target = store.rollback(reason="bad")
    assert target.number == second
    assert "line 4 is not a JSON object" in caplog.text
    events = store.history()
    assert [(event["event"], event["version"]) for event in events] == [
        ("published", first), ("published", second), ("published", third), ("rejected", third)]
    assert len({event["operation"] for event in events}) == 4


class _Crash(Exception):
    """Stands for the process dying between two renames."""


def _crash_at_the_second_rename(monkeypatch) -> None:
    """The store's next change does its first folder rename, then the process dies."""
    real_rename, renames = filesystem.rename, []

    def rename_then_crash(source, target):
        if renames:
            raise _Crash
        renames.append(source)
        real_rename(source, target)

    monkeypatch.setattr(filesystem, "rename", rename_then_crash)


def test_a_rollback_cut_short_is_seen_whole_by_readers_and_finished_by_the_next_writer(
        tmp_path, model_dir, monkeypatch):
    store, (first, second, third) = _store(tmp_path, model_dir, count=3)
    _crash_at_the_second_rename(monkeypatch)
    with pytest.raises(_Crash):
        store.rollback(to_version=first, reason="bad")
    monkeypatch.undo()

    # Half the renames happened on disk; a reader (a server's poll) sees the whole rollback.
    on_disk = sorted(name for name in os.listdir(store.model_dir) if name[0].isdigit())
    assert on_disk != sorted([str(first), f"{second}{REJECTED_SUFFIX}",
                              f"{third}{REJECTED_SUFFIX}"])
    reader = ModelStore(os.path.dirname(store.model_dir), MODEL)
    assert [version.number for version in reader.serving_candidates()] == [first]
    # The next writer finishes it before its own change, and records it once.
    fourth = reader.publish(str(model_dir), {}).number
    assert not os.path.exists(os.path.join(store.model_dir, OPERATION_FILE))
    assert sorted(name for name in os.listdir(store.model_dir) if name[0].isdigit()) == sorted(
        [str(first), f"{second}{REJECTED_SUFFIX}", f"{third}{REJECTED_SUFFIX}", str(fourth)])
    assert [event["event"] for event in reader.history()].count("rejected") == 2


def test_an_amend_cut_short_between_its_renames_is_seen_whole_and_finished(tmp_path, model_dir,
                                                                          monkeypatch):
    """The old folder moved aside, the new one not yet in place: readers see the new version,
    and the next writer puts it in place (repeating the swap never moves it away again)."""
    store, (first, second) = _store(tmp_path, model_dir, count=2)
    extra = tmp_path / "tflite"
    extra.mkdir()
    (extra / "model-int8.tflite").write_bytes(b"variant")
    _crash_at_the_second_rename(monkeypatch)
    with pytest.raises(_Crash):
        store.amend(first, {"tflite": str(extra)}, {"tflite": {"shipped": ["int8"]}})
    monkeypatch.undo()
    assert not os.path.exists(os.path.join(store.model_dir, str(first)))

    reader = ModelStore(os.path.dirname(store.model_dir), MODEL)
    seen = {version.number: version for version in reader.versions()}
    assert sorted(seen) == [first, second]
    verify_version(seen[first], None)
    assert "tflite/model-int8.tflite" in seen[first].manifest["files"]

    operation = open(os.path.join(store.model_dir, OPERATION_FILE), "rb").read()
    third = reader.publish(str(model_dir), {}).number  # the next writer finishes the swap
    # A crash after the swap but before the record is removed: doing it again moves nothing.
    open(os.path.join(store.model_dir, OPERATION_FILE), "wb").write(operation)
    reader.rollback(to_version=second, reason="a writer finishes the record again")
    assert sorted(name for name in os.listdir(store.model_dir) if name[0].isdigit()) == sorted(
        [str(first), str(second), f"{third}{REJECTED_SUFFIX}"])
    amended = {version.number: version for version in reader.versions()}[first]
    verify_version(amended, None)
    assert amended.manifest["tflite"] == {"shipped": ["int8"]}
    assert not [name for name in os.listdir(store.model_dir) if name.startswith(".staging")
                or name.startswith(".deleting")]
    assert [event["event"] for event in reader.history()].count("amended") == 1


def test_a_publish_cut_short_after_its_commit_is_listed_and_finished(tmp_path, model_dir,
                                                                     monkeypatch):
    store, (first,) = _store(tmp_path, model_dir, count=1)
    monkeypatch.setattr(ModelStore, "_apply", lambda self, operation: None)
    pushed = store.publish(str(model_dir), {"data_span": 9})
    monkeypatch.undo()

    assert [version.number for version in store.serving_candidates()] == [pushed.number, first]
    store.rollback(reason="finishes the push first")
    assert [version.number for version in store.serving_candidates()] == [first]
    assert [event["event"] for event in store.history()] == ["published", "published",
                                                             "rejected"]


def test_an_unreadable_operation_record_stops_writers_with_the_fix_and_readers_go_on(
        tmp_path, model_dir, caplog):
    store, numbers = _store(tmp_path, model_dir, count=2)
    with open(os.path.join(store.model_dir, OPERATION_FILE), "wb") as record:
        record.write(b'{"id": "x", "renames": [["1", ')

    with caplog.at_level(logging.WARNING, logger="textclf.serving"):
        assert [version.number for version in store.versions()] == numbers
    assert "delete it" in caplog.text
    with pytest.raises(StoreError, match=f"{OPERATION_FILE} cannot be read.*delete it"):
        store.rollback()


@pytest.mark.parametrize("name, reason", [
    ("0017", "leading zero"),
    ("17.rejected.rejected", None),
    ("notes", None),
])
def test_folders_that_are_not_versions_as_the_store_writes_them(tmp_path, model_dir, name,
                                                                 reason):
    store, numbers = _store(tmp_path, model_dir, count=1)
    os.makedirs(os.path.join(store.model_dir, name))

    listed = {os.path.basename(version.path): version for version in store.versions()}
    if reason:
        assert reason in listed[name].problem
    else:
        assert name not in listed
    assert [version.number for version in store.serving_candidates()
            if not version.problem] == numbers


def test_a_version_folder_that_is_a_file_is_refused_alone(tmp_path, model_dir):
    store, (first,) = _store(tmp_path, model_dir, count=1)
    with open(os.path.join(store.model_dir, str(first + 1)), "w", encoding="utf-8") as handle:
        json.dump({}, handle)

    newest, oldest = store.serving_candidates()
    assert newest.number == first + 1 and "is a file" in newest.problem
    assert oldest.number == first and not oldest.problem


def test_leftovers_named_with_impossible_pids_are_cleaned_not_fatal(tmp_path, model_dir):
    store, (first,) = _store(tmp_path, model_dir, count=1)
    os.makedirs(os.path.join(store.model_dir, ".staging-5-99999999999999999999"))
    with open(os.path.join(store.model_dir, f"history.jsonl.tmp-{'9' * 30}"), "w",
              encoding="utf-8"):
        pass

    second = store.publish(str(model_dir), {}).number

    assert sorted(name for name in os.listdir(store.model_dir) if "99999" in name) == []
    assert [version.number for version in store.serving_candidates()] == [second, first]
