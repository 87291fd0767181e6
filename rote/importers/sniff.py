"""Looking at a file before reading it: compression, encoding, binary content, delimiter and format.

People bring logs saved by Excel on Windows (cp1252, a BOM, ``;`` because their locale uses a decimal
comma), gzipped XES exports, or the wrong file altogether. Each of these is recognised here from the first
64 KB, so the reader can either read the file right or refuse it with one line that says what it saw.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from rote.errors import ImportFormatError
from rote.importers.options import DELIMITERS, Format

SAMPLE_BYTES = 64 * 1024
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
#: (mark, encoding, the encoding of what follows the mark)
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32", "utf-32-be"),
    (b"\xff\xfe", "utf-16", "utf-16-le"),
    (b"\xfe\xff", "utf-16", "utf-16-be"),
)
_GZIP_MAGIC = b"\x1f\x8b"
_AL_COLUMNS = {"timeStamp", "targetApp", "eventType"}
_BOSCO_COLUMNS = {"timeStamp", "eventType"}


@dataclass(frozen=True, kw_only=True)
class Sniffed:
    """What the first bytes of a file say about it."""

    compressed: bool
    encoding: str
    sample: str  # the decoded first SAMPLE_BYTES, cut at the last complete line when there is one


#: The most a gzipped log may expand to, as a multiple of its size on disk (and at least MIN_GZIP_CAP
#: bytes); `ROTE_MAX_GZIP_RATIO` changes it. Real exports compress 5-30x; a gzip bomb, 1000x and more.
MAX_GZIP_RATIO = 100
MIN_GZIP_CAP = 8 << 20


def max_gzip_ratio() -> int:
    """`ROTE_MAX_GZIP_RATIO` (a whole number >= 1), else `MAX_GZIP_RATIO`."""
    raw = os.environ.get("ROTE_MAX_GZIP_RATIO", "").strip()
    if not raw:
        return MAX_GZIP_RATIO
    if not raw.isdigit() or int(raw) < 1:
        raise ImportFormatError(f"ROTE_MAX_GZIP_RATIO={raw[:40]!r}: expected a whole number >= 1")
    return int(raw)


class _Capped(io.RawIOBase):
    """A decompressing stream that refuses to expand past `cap` bytes."""

    def __init__(self, inner: IO[bytes], cap: int, ratio: int, name: str) -> None:
        self.inner, self.cap, self.ratio, self.name, self.seen = inner, cap, ratio, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.inner.read(len(b))
        self.seen += len(data)
        if self.seen > self.cap:
            raise ImportFormatError(
                f"{self.name}: expands to more than {self.cap >> 20} MB (over {self.ratio}x its size): "
                "a gzip bomb? (ROTE_MAX_GZIP_RATIO)"
            )
        b[: len(data)] = data
        return len(data)


@contextmanager
def open_binary(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, gunzipped when it is gzip (``.xes.gz`` exports are common)."""
    try:
        raw: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path}: {exc.strerror}") from None
    with raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic == _GZIP_MAGIC:
            size = os.fstat(raw.fileno()).st_size
            with gzip.GzipFile(fileobj=raw) as gz:
                # a gzip bomb: every record of a log is held in memory before anything is sent (read_log),
                # about 4 KB per short event, so 80 KB of gzip became 420 MB; real exports compress 5-30x
                ratio = max_gzip_ratio()
                capped = _Capped(cast(IO[bytes], gz), max(ratio * size, MIN_GZIP_CAP), ratio, path.name)
                yield cast(IO[bytes], io.BufferedReader(capped))
        else:
            yield raw


def _escape_undecodable(exc: UnicodeError) -> tuple[str | bytes, int]:
    """Decoding, each byte that does not decode becomes a lone surrogate (U+DC00 + byte), as
    `surrogateescape` does for UTF-8; encoding, such a surrogate becomes its byte again (the rejected line's
    bytes kept for dead letters). `surrogateescape` raises on UTF-16 and UTF-32 input (an illegal surrogate,
    an odd trailing byte) and on bytes below 0x80: a UTF-16 export from Excel with one broken line stopped
    the whole import with an internal error."""
    if isinstance(exc, UnicodeDecodeError):
        return "".join(chr(0xDC00 + b) for b in exc.object[exc.start : exc.end]), exc.end
    if isinstance(exc, UnicodeEncodeError):
        chars = exc.object[exc.start : exc.end]
        if all(0xDC00 <= ord(c) <= 0xDCFF for c in chars):
            return bytes(ord(c) - 0xDC00 for c in chars), exc.end
    raise exc


UNDECODABLE = "rote-undecodable"
codecs.register_error(UNDECODABLE, _escape_undecodable)


@contextmanager
def open_text(path: Path, encoding: str) -> Iterator[IO[str]]:
    """Text lines in `encoding`; undecodable bytes become surrogates (`has_undecodable`), never an abort,
    so one broken row is reported as such and every row after it is still read."""
    with open_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, errors=UNDECODABLE, newline="")
        try:
            yield text
        finally:
            text.detach()


def has_undecodable(text: str) -> bool:
    """True when `text` holds bytes the file's encoding could not decode (see `open_text`)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def sniff(path: Path, *, encoding: str | None = None) -> Sniffed:
    """Compression and encoding of `path` and its first lines; refuses empty and binary files."""
    try:
        with open_binary(path) as fh:
            head = fh.read(SAMPLE_BYTES)
            compressed = isinstance(getattr(fh, "raw", None), _Capped)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ImportFormatError(f"{path.name}: cannot read it ({exc})") from None
    if not head.strip():
        raise ImportFormatError(
            f"{path.name} is empty" if not head else f"{path.name} holds only blank space"
        )
    wide = _utf16_without_bom(head)
    if wide and (encoding is None or not codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))):
        raise ImportFormatError(
            f"{path.name} looks like UTF-16 text without a byte-order mark; pass --encoding {wide}"
        )
    enc = encoding or sniff_encoding(head, path)
    if encoding is None and b"\x00" in head and not enc.startswith("utf-16") and not enc.startswith("utf-32"):
        raise ImportFormatError(f"{path.name} looks binary (NUL bytes), not a text log")
    sample = head.decode(enc, errors="replace")
    if len(head) == SAMPLE_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n") + 1]  # no half line (or half character) at the end
    controls = sum(1 for ch in sample if ch < " " and ch not in "\t\r\n\f") + sample.count("\ufffd")
    if controls > max(8, len(sample) // 20):
        raise ImportFormatError(f"{path.name} looks binary ({controls} control characters in its first KB)")
    return Sniffed(compressed=compressed, encoding=enc, sample=sample)


def _utf16_without_bom(head: bytes) -> str | None:
    """ "utf-16-le" or "utf-16-be" when the bytes are ASCII text with a NUL beside every character (UTF-16
    saved without a byte-order mark), else None: such a file is text, not binary, and one flag reads it."""
    sample = head[:512]
    if len(sample) < 8 or any(sample.startswith(bom) for bom, _ in _BOMS):
        return None
    even, odd = sample[0::2], sample[1::2]
    for nul, text, name in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if nul.count(0) < 0.9 * len(nul) or 0 in text:
            continue
        if sum(32 <= b < 127 or b in (9, 10, 13) for b in text) >= 0.9 * len(text):
            return name
    return None


def json_encoding(path: Path) -> str:
    """The encoding to read a JSON or JSON-lines file in: UTF-8 (RFC 8259), unless it begins with a UTF-16
    or UTF-32 byte-order mark and reads as such (Windows PowerShell 5 writes `ConvertTo-Json | Out-File`
    output as UTF-16 with one): most of a JSON text's characters are ASCII (its punctuation and keys),
    while UTF-8 bytes taken for UTF-16 are not, so a garbage first line that happens to begin with those
    bytes stays one bad line. No other encoding is guessed."""
    try:
        with open_binary(path) as fh:
            head = fh.read(1024)
    except (OSError, EOFError, gzip.BadGzipFile):
        return "utf-8-sig"  # `sniff` reports why it cannot be read
    for bom, name, body in _WIDE_BOMS:
        if head.startswith(bom):
            text = head[len(bom) :].decode(body, errors="replace")
            return name if text and sum(ch < "\x80" for ch in text) >= 0.5 * len(text) else "utf-8-sig"
    return "utf-8-sig"


#: How much less coherent (charset-normalizer's language fit, 0-1) cp1252 may read a sample than the best
#: guess and still be taken (French 0.619 against cp1258's 0.650; Polish and Czech leave cp1252 out).
_CP1252_MARGIN = 0.05


def sniff_encoding(head: bytes, path: Path) -> str:
    """The encoding of a file from its first bytes: a BOM if any, else UTF-8 if it decodes, else a guess."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(head) - 3:
            return "utf-8"  # the sample cut a character in two
    if b"\x00" in head:
        return "utf-8"  # binary: `sniff` refuses it with a clear reason
    from charset_normalizer import from_bytes

    results = from_bytes(head)
    best = results.best()
    if best is None or best.encoding is None:
        raise ImportFormatError(f"{path.name}: cannot tell its text encoding; pass --encoding (e.g. cp1252)")
    # Single-byte code pages often read a sample about equally well, and the guess is then the first by
    # name, or one whose combining accents happen to look coherent: cp1250 or cp1258 before cp1252 turned
    # a French export's "Hélène" into "Hélčne" (a new user's file). Windows' Western European page wins
    # a near tie (coherence within `_CP1252_MARGIN`), or when it reads the sample to the same text.
    if best.encoding != "cp1252" and best.encoding.startswith(("cp12", "cp8", "iso8859", "latin")):
        floor = best.coherence - _CP1252_MARGIN
        tied = any(m.encoding == "cp1252" and m.chaos <= best.chaos and m.coherence >= floor for m in results)
        try:
            same = head.decode("cp1252") == head.decode(best.encoding)
        except UnicodeDecodeError:
            same = False
        if tied or same:
            return "cp1252"
    return str(best.encoding)


def sniff_delimiter(sample: str) -> str:
    """The delimiter that splits the first lines into the same number (> 1) of columns most consistently.

    `csv.Sniffer` guesses from character frequencies and is easily fooled by commas inside quoted values;
    parsing with each candidate and comparing the column counts with the header's is not.
    """
    lines = sample.splitlines(keepends=True)[:50]
    if not lines:
        return ","
    best, best_score = ",", (-1.0, 0)
    for delim in DELIMITERS:
        try:
            rows = [r for r in csv.reader(lines, delimiter=delim) if r]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        agree = sum(1 for r in rows[1:] if len(r) == width) / max(len(rows) - 1, 1)
        score = (agree, width)
        if score > best_score:
            best, best_score = delim, score
    return best


def header_of(sample: str, delimiter: str) -> list[str]:
    """The first non-blank line of `sample` split as a CSV header."""
    for row in csv.reader(sample.splitlines(keepends=True)[:5], delimiter=delimiter):
        if row:
            return [c.strip() for c in row]
    return []


def detect_format(path: Path, sniffed: Sniffed, delimiter: str | None) -> Format:
    """The format of a file: XES, JSON lines and a JSON array by their first character, CSV dialects by their
    header."""
    name = path.name.lower()
    first = sniffed.sample.lstrip("\ufeff \t\r\n")[:1]
    if first == "<" or name.endswith((".xes", ".xes.gz")):
        return "xes"
    if first == "{" or name.endswith((".jsonl", ".ndjson", ".jsonl.gz")):
        return "jsonl"
    if first == "[":
        return "json"
    header = set(header_of(sniffed.sample, delimiter or sniff_delimiter(sniffed.sample)))
    if header >= _AL_COLUMNS:
        return "actionlogger"
    if header >= _BOSCO_COLUMNS and ("source" in header or "caseID" in header):
        return "bosco"
    return "csv"
