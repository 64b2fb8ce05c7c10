"""Which character encoding a feed is really in, and its bytes re-encoded as UTF-8. Pure.

feedparser's own detection follows the declarations (HTTP charset, then the XML declaration) and, when they
fail, falls back to windows-1252. That loses in three ways seen from real servers:

* a UTF-8 feed with one invalid byte is read entirely as windows-1252: every Japanese title turns to mojibake;
* a server declaring ISO-8859-1 (a common default) while sending UTF-8 gets mojibake too, since ISO-8859-1
  decodes any byte sequence without an error;
* Japanese feeds in Shift_JIS or EUC-JP without any declaration are read as windows-1252 (feedparser only
  guesses with the optional ``chardet``, which watcher does not install).

So the parse stage decides the encoding here, in this order, and hands feedparser UTF-8 with matching
declarations:

1. a byte-order mark (UTF-8/16/32), or the first bytes of ``<?xml`` in UTF-16/32 without one (XML 1.0
   appendix F): unambiguous;
2. the declared encodings, HTTP charset first (RFC 7303), then the XML declaration; a declaration is trusted
   when the bytes decode under it, except that bytes which are valid UTF-8 with non-ASCII characters are UTF-8
   whatever a legacy declaration says (legacy text is practically never valid UTF-8, the reverse mistake is
   common);
3. UTF-8 when the bytes are valid UTF-8, or *mostly* (then the invalid bytes become U+FFFD, with a warning);
4. a Japanese guess: Shift_JIS (cp932) or EUC-JP when the bytes decode cleanly under it and the text has kana
   (Japanese prose always does; Western text misread as cp932 gives kanji, almost never kana);
5. windows-1252, undefined bytes replaced: the web's de facto "unknown Western" encoding.

A small hand-written heuristic instead of a detection library: the only guess watcher needs beyond the
declarations is "Japanese or Western", and kana make that decision reliable; general detectors are large and
still confuse short Japanese texts with Chinese.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["Decoded", "decode", "to_utf8_xml"]

_HEAD = 1024
_XML_DECL = re.compile(rb"^\s*<\?xml\b[^>]*?\bencoding\s*=\s*([\"'])([^\"']{1,40})\1", re.IGNORECASE)
_XML_DECL_TEXT = re.compile(r"^(\s*<\?xml\b[^>]*?\bencoding\s*=\s*)([\"'])[^\"']{0,40}\2", re.IGNORECASE)
_CHARSET_PARAM = re.compile(r";\s*charset\s*=\s*[\"']?([^\"';\s]+)", re.IGNORECASE)
_KANA = re.compile(r"[\u3041-\u30ff]")  # full-width hiragana and katakana; half-width kana do not count
_NON_ASCII = re.compile(r"[^\x00-\x7f]")

# Bytes-order marks, longest first (the UTF-32 LE mark begins with the UTF-16 LE one).
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
_UTF8_NAMES = frozenset({"utf-8", "utf_8", "utf8", "u8", "utf-8-sig"})


@dataclass(frozen=True)
class Decoded:
    """A body decoded to text, and how."""

    text: str  # the document, without a byte-order mark
    encoding: str  # Python's name of the codec used ("utf-8", "cp932", "euc_jp", "cp1252"...)
    warning: str | None = None  # why the result may be imperfect (a wrong declaration, replaced bytes...)
    replaced: bool = False  # some bytes were invalid in that encoding and became U+FFFD


def _codec(name: str) -> str | None:
    """Python's canonical name of an encoding label, or None when Python does not know it."""
    label = name.strip().strip("\"'").lower()
    # Servers say Shift_JIS and mean Microsoft's superset (NEC and IBM extensions, ①, ～): decode with it.
    if label in ("shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "windows-31j"):
        return "cp932"
    if label in ("iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii"):
        # The WHATWG encoding standard: these labels mean windows-1252 on the web (it decodes the same bytes
        # for every printable Latin-1 character, and ASCII is a subset); strict ASCII would reject "é".
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def _is_utf8(codec: str) -> bool:
    return codec.replace("_", "-") in _UTF8_NAMES


def declared_charset(content_type: str) -> str | None:
    """The charset parameter of a Content-Type header value, if any."""
    m = _CHARSET_PARAM.search(content_type or "")
    return m.group(1) if m else None


def xml_declared_encoding(body: bytes) -> str | None:
    """The encoding named in the XML declaration (ASCII-compatible bodies only)."""
    m = _XML_DECL.match(body[:_HEAD])
    return m.group(2).decode("ascii", "replace") if m else None


def _sniff_utf16_32(body: bytes) -> str | None:
    """UTF-16/32 without a byte-order mark, recognised by how ``<`` is encoded (XML 1.0 appendix F)."""
    head = body[:4]
    if len(head) < 4:
        return None
    if head == b"\x00\x00\x00<":
        return "utf-32-be"
    if head == b"<\x00\x00\x00":
        return "utf-32-le"
    if head[0] == 0 and head[1:2] == b"<" and head[2] == 0 and head[3] != 0:
        return "utf-16-be"
    if head[0:1] == b"<" and head[1] == 0 and head[2] != 0 and head[3] == 0:
        return "utf-16-le"
    return None


def _strict(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _utf8_quality(body: bytes) -> tuple[str, int, int]:
    """UTF-8 with replacement: (text, invalid sequences, valid non-ASCII characters)."""
    text = body.decode("utf-8", "replace")
    bad = text.count("\ufffd") - body.count(b"\xef\xbf\xbd")  # a U+FFFD already in the bytes is no error
    valid = len(_NON_ASCII.findall(text)) - text.count("\ufffd")
    return text, bad, valid


def _japanese(body: bytes) -> tuple[str, str] | None:
    """(text, codec) when the bytes are Japanese in cp932 or EUC-JP: a clean decode and kana in the text."""
    best: tuple[int, str, str] | None = None
    for codec in ("cp932", "euc_jp"):
        text = _strict(body, codec)
        if text is None:
            continue
        kana = len(_KANA.findall(text))
        non_ascii = len(_NON_ASCII.findall(text))
        # Japanese prose is a third to two thirds kana; a misread Western text gives next to none.
        if kana >= 2 and kana * 5 >= non_ascii and (best is None or kana > best[0]):
            best = (kana, text, codec)
    return (best[1], best[2]) if best else None


def _fallback(body: bytes, why: str) -> Decoded:
    """Steps 3 to 5 when nothing declared (or the declaration was wrong): UTF-8, Japanese, windows-1252."""
    strict = _strict(body, "utf-8")
    if strict is not None:
        return Decoded(strict, "utf-8", why or None)
    text, bad, valid = _utf8_quality(body)
    replaced = f"{bad} invalid UTF-8 byte sequence(s) replaced with U+FFFD"
    if valid >= 2 * bad:
        return Decoded(text, "utf-8", _join(why, replaced), True)
    japanese = _japanese(body)
    if japanese is not None:
        ja_text, codec = japanese
        name = "Shift_JIS" if codec == "cp932" else "EUC-JP"
        return Decoded(ja_text, codec, _join(why or "not UTF-8", f"read as {name} (Japanese text detected)"))
    if valid and valid >= bad:
        return Decoded(text, "utf-8", _join(why, replaced), True)
    western = _strict(body, "cp1252")
    return Decoded(
        western if western is not None else body.decode("cp1252", "replace"),
        "cp1252",
        _join(why or "not UTF-8", "not Japanese; read as windows-1252"),
        western is None,
    )


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def decode(body: bytes, content_type: str = "") -> Decoded:
    """Decode a feed body (see the module docstring for the order of the evidence)."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            rest = body[len(bom) :]
            text = _strict(rest, codec)
            if text is not None:
                return Decoded(text, codec)
            return Decoded(
                rest.decode(codec, "replace"), codec, f"invalid {codec} bytes after the byte-order mark", True
            )
    sniffed = _sniff_utf16_32(body)
    if sniffed is not None:
        text = _strict(body, sniffed)
        if text is not None:
            return Decoded(text, sniffed)
        return Decoded(body.decode(sniffed, "replace"), sniffed, f"invalid {sniffed} bytes replaced", True)

    warnings: list[str] = []
    labels = [x for x in (declared_charset(content_type), xml_declared_encoding(body)) if x]
    tried: list[str] = []
    for label in labels:
        known = _codec(label)
        if known is None:
            warnings.append(f"unknown encoding {label[:40]!r} declared, ignored")
            continue
        codec = known
        if codec in tried:
            continue
        tried.append(codec)
        if _is_utf8(codec):
            text = _strict(body, "utf-8")
            if text is not None:
                return Decoded(text, "utf-8", _join(*warnings) or None)
            warnings.append(f"declared {label} but the bytes are not valid UTF-8")
            continue
        if codec.startswith(("utf-16", "utf-32")):
            warnings.append(f"declared {label} without a byte-order mark or UTF-16/32 bytes, ignored")
            continue
        utf8 = _strict(body, "utf-8")
        if utf8 is not None and _NON_ASCII.search(utf8):
            return Decoded(utf8, "utf-8", _join(*warnings, f"declared {label} but the bytes are UTF-8"))
        text = _strict(body, codec)
        if text is None and codec == "cp1252":
            text = body.decode("latin-1")  # the five bytes windows-1252 leaves undefined: their Latin-1 reading
        if text is not None:
            return Decoded(text, codec, _join(*warnings) or None)
        warnings.append(f"declared {label} but the bytes are not valid {label}")
    return _fallback(body, _join(*warnings))


def _media_type(content_type: str) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def to_utf8_xml(body: bytes, content_type: str = "") -> tuple[bytes, str, Decoded]:
    """The body as UTF-8 whose XML declaration says so, and a Content-Type saying so too.

    Returns (body, content_type, decoded). The common case, a UTF-8 body without a contrary declaration, is
    returned as it is (no copy).
    """
    decoded = decode(body, content_type)
    media = _media_type(content_type) or "application/xml"
    ctype = f"{media}; charset=utf-8"
    if decoded.encoding == "utf-8" and not decoded.replaced and not body.startswith(codecs.BOM_UTF8):
        declared = xml_declared_encoding(body)
        if declared is None or _is_utf8(_codec(declared) or ""):
            return body, ctype, decoded
    text = _XML_DECL_TEXT.sub(r'\1"utf-8"', decoded.text, count=1)
    return text.encode("utf-8", "replace"), ctype, decoded
