"""Card bodies as HTML: raw HTML is text, images load only from the explorer, links leave with
rel=noopener, and the notes Hub templates leave in HTML comments do not show."""

from __future__ import annotations

import time

from registry.explorer.markdown import render_card_body, strip_comments


def _render(body: str) -> str:
    return str(render_card_body(body, lambda cid: f"/plots/{cid}" if cid == "bafkgood" else None))


def test_html_comments_are_dropped_and_raw_html_stays_text():
    html = _render("# T\n\n<!-- a note to the author -->\n\nkept <b>bold</b>\n\n<!--\nmulti\nline\n-->\nafter\n")
    assert "note to the author" not in html and "multi" not in html and "after" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>" not in html


def test_an_unclosed_comment_is_kept_as_text():
    html = _render("before <!-- never closed <script>x</script>")
    assert "never closed" in html and "<script>" not in html


def test_many_unclosed_comment_openers_cost_linear_time():
    text = "<!--" * 200_000  # 800 KB of openers, no closer
    started = time.perf_counter()
    assert strip_comments(text) == text
    assert strip_comments("a<!--x-->b<!--y-->c<!--z") == "abc<!--z"
    assert time.perf_counter() - started < 1.0


def test_images_and_links():
    html = _render("![ok](ipfs://bafkgood) ![no](ipfs://bafkother) ![web](https://tracker.example/p.png) "
                   "[x](https://example.org) [js](javascript:alert(1))")
    assert '<img src="/plots/bafkgood"' in html and html.count("<img") == 1  # unlisted CIDs and the web: links
    assert 'src="https://tracker.example' not in html and "[image: web]" in html
    assert 'rel="nofollow noopener noreferrer"' in html and 'href="javascript:' not in html
