"""Lineage as a picture: a layered layout of the index's lineage graph, drawn as SVG by a template.

Releases are placed in rows by generation (longest path from a root, over ``parent`` and card
``base_model`` edges), and in each row by name, then publish order. It is a small hand-written
layout on purpose: lineage graphs are trees with a few cross links, capped at 200 nodes by the
index query, and a layout engine (Graphviz) would be a binary dependency to install everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

NODE_W = 200
NODE_H = 46
GAP_X = 28
GAP_Y = 54
MARGIN = 16
LABEL_CHARS = 30


@dataclass(frozen=True)
class Box:
    id: str
    x: int
    y: int
    label: str
    sublabel: str
    title: str
    href: str | None
    revoked: bool
    focus: bool
    external: bool


@dataclass(frozen=True)
class Line:
    x1: int
    y1: int
    x2: int
    y2: int
    kind: str
    label: str | None


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def release_href(name: str, version: str) -> str:
    return f"/models/{quote(name, safe='/')}/{quote(version, safe='')}"


def layout(graph: dict[str, Any]) -> dict[str, Any]:
    """Positions for ``registry.index.lineage.lineage(...).to_json()``: boxes, lines and the picture's size."""
    nodes = {n["id"]: n for n in graph["nodes"]}
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for edge in graph["edges"]:
        if edge["from"] in nodes and edge["to"] in nodes:
            parents[edge["to"]].append(edge["from"])
    generation: dict[str, int] = {}

    def depth(node: str, seen: frozenset[str] = frozenset()) -> int:
        if node in generation:
            return generation[node]
        if node in seen or len(seen) > len(nodes):  # a cycle (a hostile card) cannot loop forever
            return 0
        value = 1 + max((depth(p, seen | {node}) for p in parents[node]), default=-1)
        generation[node] = value
        return value

    for node in nodes:
        depth(node)
    order = {n: i for i, n in enumerate(nodes)}
    rows: dict[int, list[str]] = {}
    for node in sorted(nodes, key=lambda n: (generation[n], nodes[n]["name"], order[n])):
        rows.setdefault(generation[node], []).append(node)
    widest = max((len(r) for r in rows.values()), default=1)
    width = MARGIN * 2 + widest * NODE_W + (widest - 1) * GAP_X
    boxes: dict[str, Box] = {}
    for level, members in rows.items():
        row_width = len(members) * NODE_W + (len(members) - 1) * GAP_X
        start = (width - row_width) // 2
        for i, node in enumerate(members):
            n = nodes[node]
            external = bool(n.get("external"))
            boxes[node] = Box(
                id=node, x=start + i * (NODE_W + GAP_X), y=MARGIN + level * (NODE_H + GAP_Y),
                label=_short(n["name"]), sublabel=("REVOKED " if n["revoked"] else "") + (n["version"] or "external"),
                title=n["ref"] + (f" (revoked: {n['revocation_reason']})" if n["revoked"] else ""),
                href=None if external else release_href(n["name"], n["version"]),
                revoked=bool(n["revoked"]), focus=bool(n.get("focus")), external=external,
            )
    lines = []
    for edge in graph["edges"]:
        a, b = boxes.get(edge["from"]), boxes.get(edge["to"])
        if a is None or b is None:
            continue
        lines.append(Line(a.x + NODE_W // 2, a.y + NODE_H, b.x + NODE_W // 2, b.y, edge["kind"],
                          edge.get("relation")))
    height = MARGIN * 2 + max(len(rows), 1) * NODE_H + (max(len(rows), 1) - 1) * GAP_Y
    return {"width": width, "height": height, "boxes": list(boxes.values()), "lines": lines,
            "node_w": NODE_W, "node_h": NODE_H, "truncated": graph.get("truncated", False)}
