"""Ways a version folder's manifest goes bad in real stores, for the store and server fault tests.

Each takes a version folder and spoils its `manifest.json` the way an editor, a copy or a crash
would; the value is a phrase the store's reason for refusing it must contain.
"""

import json
import pathlib


def flip_byte(path: pathlib.Path, offset: int = -1) -> None:
    """Changes one bit of the file at `offset` (default: its middle), as a bad disk or a
    tamperer would: the store's SHA-256 sums must notice."""
    content = bytearray(path.read_bytes())
    content[len(content) // 2 if offset < 0 else offset] ^= 0x01
    path.write_bytes(bytes(content))


def _utf16(folder: pathlib.Path) -> None:
    # Notepad's "Unicode": UTF-16 with a byte-order mark.
    manifest = folder / "manifest.json"
    manifest.write_bytes(manifest.read_text(encoding="utf-8").encode("utf-16"))


def _latin1_byte(folder: pathlib.Path) -> None:
    manifest = folder / "manifest.json"
    record = json.loads(manifest.read_text(encoding="utf-8"))
    record["note"] = "reviewed"
    manifest.write_bytes(json.dumps(record).encode("utf-8").replace(b"reviewed", b"r\xe9vis\xe9"))


def _json_list(folder: pathlib.Path) -> None:
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps([json.loads(manifest.read_text(encoding="utf-8"))]))


def _utf8_bom(folder: pathlib.Path) -> None:
    manifest = folder / "manifest.json"
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())


def _folder(folder: pathlib.Path) -> None:
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").mkdir()


def _missing(folder: pathlib.Path) -> None:
    (folder / "manifest.json").unlink()


def _torn(folder: pathlib.Path) -> None:
    manifest = folder / "manifest.json"
    content = manifest.read_bytes()
    manifest.write_bytes(content[:len(content) // 2])


def _no_files(folder: pathlib.Path) -> None:
    manifest = folder / "manifest.json"
    record = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**record, "files": ["saved_model.pb"]}))


def _deep(folder: pathlib.Path) -> None:
    (folder / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)


CORRUPTIONS = {
    "utf-16": (_utf16, "UTF-16"),
    "latin-1 byte": (_latin1_byte, "not UTF-8"),
    "json list": (_json_list, "holds a JSON list, not an object"),
    "utf-8 byte-order mark": (_utf8_bom, "not JSON"),
    "a folder": (_folder, "is a folder"),
    "missing": (_missing, "no manifest.json"),
    "torn": (_torn, "not JSON"),
    "files not an object": (_no_files, '"files"'),
    "nested too deep": (_deep, "not JSON"),
}


def corrupt(folder: str, kind: str) -> str:
    """Spoils `folder`'s manifest in the way named `kind`; returns the phrase to expect."""
    spoil, phrase = CORRUPTIONS[kind]
    spoil(pathlib.Path(folder))
    return phrase
