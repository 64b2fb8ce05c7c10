"""html_to_text's regex fast path gives exactly what html.parser gives, on any mix of text, tags and entities."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.text import _CONTROL, collapse_whitespace, html_to_text, parsed_html_to_text

NAMES = ["p", "P", "a", "b", "br", "div", "span", "li", "img", "script", "style", "title", "svg", "x1", "my-tag"]
ATTRS = st.sampled_from(
    [
        "",
        " href='https://e.com/?a=1&amp;b=2'",
        ' class="x y"',
        " title=plain",
        " data-x = '1'",
        ' onclick="alert(1)"',
        ' alt="a>b"',
        " title='<p>'",
        " disabled",
        "\n",
    ]
)
TAG = st.builds(
    lambda close, name, attrs, selfclose: f"<{'/' if close else ''}{name}{attrs}{'/' if selfclose else ''}>",
    st.booleans(),
    st.sampled_from(NAMES),
    ATTRS,
    st.booleans(),
)
TEXT = st.text(alphabet="ab 日本\n\t&;#x3042amplt<>!-?", max_size=12)
ENTITY = st.sampled_from(["&amp;", "&lt;b&gt;", "&#12354;", "&#x3042;", "&eacute;", "&nbsp;", "&copy", "&bogus;", "&"])
FRAGMENT = st.lists(st.one_of(TAG, TEXT, ENTITY), max_size=12).map("".join)


@settings(database=None, deadline=None, max_examples=1500)
@given(FRAGMENT)
def test_fast_path_equals_the_parser(html: str) -> None:
    assert html_to_text(html) == parsed_html_to_text(html)


def test_fast_path_examples() -> None:
    for html in (
        "<p>Azure <b>compute</b> &amp; <a href='https://x.example/?a=1&amp;b=2'>more</a></p><p>次へ</p>",
        "&am<b></b>p; stays two runs",
        "<P CLASS=x>Upper</P><BR/>case",
    ):
        assert html_to_text(html) == parsed_html_to_text(html)


@settings(database=None, deadline=None, max_examples=1000)
@given(st.text(alphabet=st.characters(codec="utf-8", categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Ll", "Lo"))))
def test_collapse_whitespace_shortcut_equals_the_regex(s: str) -> None:
    reference = " ".join(_CONTROL.sub(" ", s).split())
    assert collapse_whitespace(s) == reference
