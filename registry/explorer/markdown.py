"""Model card bodies as HTML that cannot run anything.

markdown-it-py (CommonMark) with raw HTML switched off, so ``<script>`` in a card is text; its link
validation already refuses ``javascript:``/``vbscript:``/``file:``/``data:`` URLs. On top of that:
images load only from this explorer (``ipfs://CID`` becomes the release's plot route, and only for
CIDs the signed card lists), other images become plain links, and links leave with
``rel="nofollow noopener noreferrer"``. The page's Content-Security-Policy forbids scripts anyway.
"""

from __future__ import annotations

from typing import Any, Callable

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

MAX_RENDER_CHARS = 512 * 1024


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.enable("strikethrough")
    return md


_MD = _parser()


def render_card_body(body: str, image_url: Callable[[str], str | None]) -> Markup:
    """HTML for a card body; ``image_url(cid)`` maps an ``ipfs://`` image to a served URL or None."""
    md = _parser()

    def image(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        alt = "".join(child.content for child in (token.children or []))
        if src.startswith("ipfs://"):
            url = image_url(src[len("ipfs://"):].split("/", 1)[0].split("?", 1)[0])
            if url is not None:
                return f'<img src="{escape(url)}" alt="{escape(alt)}" loading="lazy">'
        return f'<a href="{escape(src)}" rel="nofollow noopener noreferrer">[image: {escape(alt or src)}]</a>'

    def link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
        return str(renderer.renderToken(tokens, idx, options, env))

    md.add_render_rule("image", image)
    md.add_render_rule("link_open", link_open)
    return Markup(md.render(strip_comments(body[:MAX_RENDER_CHARS])))


def strip_comments(text: str) -> str:
    """``text`` without HTML comments (``<!-- ... -->``), which Hub card templates use for notes to the
    author: raw HTML is off, so they would otherwise show as literal text. One left-to-right pass (a
    regex with a lazy ``.*?`` turns quadratic on many unclosed ``<!--``); an unclosed one is kept."""
    out: list[str] = []
    position = 0
    while True:
        start = text.find("<!--", position)
        if start < 0:
            break
        end = text.find("-->", start + 4)
        if end < 0:
            break
        out.append(text[position:start])
        position = end + 3
    out.append(text[position:])
    return "".join(out)


def image_cids(body: str) -> list[str]:
    """The ``ipfs://`` image CIDs a card body references (they may be served as its plots)."""
    out: list[str] = []

    def walk(tokens: Any) -> None:
        for token in tokens:
            if token.type == "image":
                src = str(token.attrGet("src") or "")
                if src.startswith("ipfs://"):
                    out.append(src[len("ipfs://"):].split("/", 1)[0].split("?", 1)[0])
            if token.children:
                walk(token.children)

    walk(_MD.parse(body[:MAX_RENDER_CHARS]))
    return out
