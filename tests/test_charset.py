"""Encoding detection (charset.py) and the prolog neutraliser, as pure functions: table-driven."""

from __future__ import annotations

import time

import pytest

from watcher.charset import decode, to_utf8_xml
from watcher.parse import neutralise_entities

JA = "<rss><channel><title>エヌビディアがデータセンター向けに新型GPUを発表</title></channel></rss>"
FR = "<rss><channel><title>Été à Paris : l’IA générative, déjà là</title></channel></rss>"


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "text", "warning"),
    [
        (JA.encode(), "", "utf-8", JA, None),
        (JA.encode("cp932"), "", "cp932", JA, "read as Shift_JIS"),
        (JA.encode("euc_jp"), "application/xml", "euc_jp", JA, "read as EUC-JP"),
        (JA.encode("cp932"), "text/xml; charset=utf-8", "cp932", JA, "declared utf-8 but the bytes are not valid"),
        (JA.encode(), "text/xml; charset=Shift_JIS", "utf-8", JA, "declared Shift_JIS but the bytes are UTF-8"),
        (JA.encode("cp932"), "text/xml; charset=Shift_JIS", "cp932", JA, None),
        (FR.encode("cp1252"), "", "cp1252", FR, "read as windows-1252"),
        (FR.encode("latin-1", "replace"), "text/xml; charset='iso-8859-1'", "cp1252", FR.replace("’", "?"), None),
        (FR.encode(), "text/xml; charset=us-ascii", "utf-8", FR, "declared us-ascii but the bytes are UTF-8"),
        (b"<t>caf\xe9 \x81</t>", "text/xml; charset=iso-8859-1", "cp1252", "<t>café \x81</t>", None),
        (FR.encode(), "text/xml; charset=bogus", "utf-8", FR, "unknown encoding 'bogus'"),
        (b"\xef\xbb\xbf" + JA.encode(), "text/xml; charset=iso-8859-1", "utf-8", JA, None),
        (JA.encode("utf-16-le"), "", "utf-16-le", JA, None),
        (b"\xfe\xff" + JA.encode("utf-16-be"), "", "utf-16-be", JA, None),
        (JA.encode("utf-32-be"), "", "utf-32-be", JA, None),
    ],
)
def test_decode(body: bytes, content_type: str, encoding: str, text: str, warning: str | None) -> None:
    d = decode(body, content_type)
    assert (d.encoding, d.text) == (encoding, text)
    if warning is None:
        assert d.warning is None
    else:
        assert d.warning is not None and warning in d.warning


def test_one_bad_byte_keeps_utf8() -> None:
    d = decode(JA.encode().replace(b"GPU", b"G\xffU"))
    assert d.encoding == "utf-8" and d.replaced and "G\ufffdU" in d.text and "エヌビディア" in d.text


def test_to_utf8_xml_rewrites_the_declaration() -> None:
    body = ('<?xml version="1.0" encoding="Shift_JIS"?>' + JA).encode("cp932")
    out, ctype, d = to_utf8_xml(body, "application/rss+xml; charset=Shift_JIS")
    assert out == ('<?xml version="1.0" encoding="utf-8"?>' + JA).encode()
    assert ctype == "application/rss+xml; charset=utf-8" and d.encoding == "cp932"
    plain = JA.encode()
    assert to_utf8_xml(plain, "")[0] is plain  # the common case costs no copy


def test_neutralise_removes_the_subset_wherever_the_prolog_puts_it() -> None:
    body = b'<?xml version="1.0"?>\n<!--' + b" " * 70_000 + b'-->\n<!DOCTYPE rss [\n<!ENTITY x "y">\n]>\n<rss/>'
    out = neutralise_entities(body)
    assert b"ENTITY" not in out and b"DOCTYPE" not in out and out.endswith(b"<rss/>")
    assert neutralise_entities(b"<!DOCTYPE html><html/>") == b"<!DOCTYPE html><html/>"


@pytest.mark.parametrize("unit", [b"<!ENTITY x ", b"<!DOCTYPE x [ ", b"<!DOCTYPE x ["])
def test_neutralise_is_linear_on_unterminated_declarations(unit: bytes) -> None:
    body = unit * 400_000 + b"<rss/>"  # ~5 MB of declarations that never close
    started = time.monotonic()
    out = neutralise_entities(body)
    assert time.monotonic() - started < 2
    assert b"ENTITY" not in out and out.count(b"DOCTYPE") <= 1
