"""html_to_text: HTML fragments (and plain text) to the text a reader sees."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.parse.text import collapse_ws, html_to_text, one_line

CASES = [
    # (input, expected)
    ("", ""),
    ("plain text", "plain text"),
    ("  spaced \t out  ", "spaced out"),
    ("line one\nline two\n\n\nline three", "line one\nline two\nline three"),
    ("<p>Hello</p><p>world</p>", "Hello\nworld"),
    ("<p>Hello</p>\n<p>world</p>", "Hello\nworld"),
    ("one<br>two<br/>three<BR />four", "one\ntwo\nthree\nfour"),
    ("<ul><li>Berdin</li><li>Tetkino</li></ul>", "Berdin\nTetkino"),
    ("<h2>Title</h2>Body", "Title\nBody"),
    ("<div>a</div><div>b</div>", "a\nb"),
    ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
    ("Kursk<img src='x.jpg'>region", "Kursk region"),
    ("un<b>bold</b>ed and <a href='/x'>linked</a>", "unbolded and linked"),
    ("source\nline breaks are <i>spaces</i>", "source line breaks are spaces"),
    ("a<script>alert('x<p>y')</script>b", "a b"),
    ("a<style type='text/css'>p { color: red }</style>b", "a b"),
    ("a<!-- hidden <p>comment</p> -->b", "a b"),
    ("x<SCRIPT>var a = '</div>';</SCRIPT>y", "x y"),
    ("keep<script>never closed", "keep"),
    ("keep<!-- never closed", "keep"),
    ("AT&amp;T &lt;b&gt; &quot;q&quot; &#8220;50,000&#8221; &#x41;", 'AT&T <b> "q" “50,000” A'),
    ("Ukraine&amp;#8217;s", "Ukraine&#8217;s"),
    ("non&nbsp;breaking&nbsp;space", "non breaking space"),
    ("Q&A and AT&T stay", "Q&A and AT&T stay"),
    ("x < y and y > z", "x < y and y > z"),
    ("a<b c<d e", "a<b c<d e"),
    ("<p>unclosed <b>bold", "unclosed bold"),
    ("</p>stray closers</div>", "stray closers"),
    ("<![CDATA[inside]]> text", "inside text"),
    ("<?xml version='1.0'?><p>pi</p>", "pi"),
    ("<!DOCTYPE html><p>doc</p>", "doc"),
    ("Kur\xadsk", "Kursk"),
    ('<a title="x>y">link</a>', 'y">link'),  # a ">" inside an attribute ends the tag: documented
    ("<p>  lots   of\u00a0\u2003 spaces  </p>", "lots of spaces"),
]


@pytest.mark.parametrize(("html", "expected"), CASES)
def test_html_to_text(html: str, expected: str) -> None:
    """Each fragment renders to the expected visible text."""
    assert html_to_text(html) == expected


def test_one_line_joins_paragraphs() -> None:
    """one_line turns every whitespace run, line breaks included, into one space."""
    assert one_line(html_to_text("<h1>Kursk</h1>\n<p>offensive</p>")) == "Kursk offensive"


def test_collapse_ws_keeps_single_breaks() -> None:
    """collapse_ws keeps paragraph breaks, drops blank lines and trailing spaces."""
    assert collapse_ws(" a  b \n \n c \n") == "a b\nc"


def test_pathological_markup_is_linear() -> None:
    """Thousands of unterminated tag starts, comments and scripts still produce text."""
    assert html_to_text("a<b " * 20000).startswith("a<b a<b")
    assert html_to_text("<script>" * 20000) == ""
    assert html_to_text("<!--" * 20000) == ""
    assert len(html_to_text("<p" * 20000)) == 40000


@given(st.text(alphabet=st.sampled_from(list("<>/!-?&;#ab pP\n\"'=[]")) | st.characters()))
def test_never_raises_and_is_collapsed(text: str) -> None:
    """Any input gives stripped text without double spaces or blank lines."""
    out = html_to_text(text)
    assert out == out.strip()
    assert "  " not in out
    assert "\n\n" not in out
