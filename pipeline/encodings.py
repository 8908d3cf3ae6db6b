"""The input files' text encoding: checked by name, read line by line, and located when wrong.

Spreadsheets export Latin-1, Windows-1252 or UTF-16 as often as UTF-8. The pre-flight check and
ExampleGen both decode with `data.encoding`, so the examples hold UTF-8 text whatever the file
was, and the user's files are read where they are, never copied. A byte the encoding cannot
decode is reported with its file, line and byte offset, found by a second, streaming pass.
"""

from __future__ import annotations

import codecs
import io
from typing import BinaryIO, Callable, Optional

DEFAULT_ENCODING = "utf-8"
# The byte-order marks that say what a file is whatever encoding it was read with.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_CHUNK_BYTES = 1 << 20


def encoding_problem(name: str) -> Optional[str]:
    """Why `name` cannot decode text files (None when it can): unknown, or not a text codec."""
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return (f"data.encoding {name!r} is not an encoding Python knows: use a name such as "
                "utf-8, latin-1, cp1252 or utf-16")
    if not codec._is_text_encoding:  # pylint: disable=protected-access
        return (f"data.encoding {name!r} is a codec, but not one from bytes to text: use a name "
                "such as utf-8, latin-1, cp1252 or utf-16")
    return None


def reading_name(encoding: str) -> str:
    """The codec to open files with: UTF-8 drops a leading byte-order mark (as ExampleGen's
    header reader does), other encodings are taken as named (utf-16 reads its own mark)."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def text_lines(binary: BinaryIO, encoding: str) -> io.TextIOWrapper:
    """`binary` as lines of text, split at '\\n' only (a '\\r' or form feed inside a quoted field
    stays where it is), endings kept, for any encoding, UTF-16 included."""
    return io.TextIOWrapper(io.BufferedReader(_Readable(binary)),
                            encoding=reading_name(encoding), newline="\n")


# Opens a path for binary reading: `open(path, "rb")` here, Beam's FileSystems.open on a worker
# (gs://, s3://, hdfs://).
Opener = Callable[[str], BinaryIO]


def _open_binary(path: str) -> BinaryIO:
    return open(path, "rb")  # pylint: disable=consider-using-with


def undecodable_at(path: str, encoding: str, opener: Opener = _open_binary) -> str:
    """Where `path` first stops decoding in `encoding`: '<path> line L (byte B: 0x..)' and, when
    the file's byte-order mark or bytes say what it is, which --encoding to try.

    Streams the file twice (to the bad byte, then counting lines before it), so a file of any
    size is located exactly; the line is the physical line, as the csv module counts.
    """
    offset, bad_bytes = _first_bad_byte(path, encoding, opener)
    line = _newlines_before(path, encoding, offset, opener) + 1
    where = f"{path} line {line} (byte {offset}: 0x{bad_bytes.hex()})"
    return f"{where} is not valid {encoding}: {_hint(path, encoding, bad_bytes, opener)}"


def _first_bad_byte(path: str, encoding: str, opener: Opener) -> tuple[int, bytes]:
    # The codec as named: utf-8-sig would count offsets after its mark.
    decoder = codecs.getincrementaldecoder(encoding)()
    fed = 0
    with opener(path) as handle:
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                window = pending + chunk
                return fed - len(pending) + error.start, window[error.start:error.end]
            if not chunk:
                raise ValueError(f"{path} decodes as {encoding}")
            fed += len(chunk)


def _newlines_before(path: str, encoding: str, offset: int, opener: Opener) -> int:
    decoder = codecs.getincrementaldecoder(encoding)()
    newlines = 0
    with opener(path) as handle:
        remaining = offset
        while remaining:
            chunk = handle.read(min(_CHUNK_BYTES, remaining))
            remaining -= len(chunk)
            newlines += decoder.decode(chunk).count("\n")
    return newlines


def _hint(path: str, encoding: str, bad_bytes: bytes, opener: Opener) -> str:
    with opener(path) as handle:
        start = handle.read(4)
    marked = next((name for bom, name in _BOMS if start.startswith(bom)), None)
    if marked and codecs.lookup(marked).name != codecs.lookup(encoding).name:
        return f"the file starts with a {marked} byte-order mark; pass --encoding {marked}"
    if codecs.lookup(encoding).name == "utf-8" and len(bad_bytes) == 1:
        return ("files exported from spreadsheets are often Windows-1252 or Latin-1: pass "
                "--encoding cp1252 (or latin-1), or re-encode the file as UTF-8")
    return "pass --encoding with the file's real encoding, or re-encode the file"


class _Readable(io.RawIOBase):
    """A binary stream (a Beam/TensorFlow file object among them) as the raw reader that
    io.TextIOWrapper needs; only read() is asked of it."""

    def __init__(self, binary: BinaryIO):
        super().__init__()
        self._binary = binary

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._binary.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)
