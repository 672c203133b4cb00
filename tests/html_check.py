"""Read a report page back: a strict tag-balance check with the standard library's HTML parser, and the charts'
lines (``polyline`` elements with the values they draw) by metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

# Elements that never have an end tag in HTML.
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


@dataclass
class Chart:
    metric: str
    lines: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    """Label -> (steps, values) as the polyline's data attributes hold them."""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.charts: list[Chart] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.in_svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "svg":
            self.charts.append(Chart(str(a.get("data-metric"))))
        if tag == "polyline" and self.charts and "data-label" in a:
            steps = [float(v) for v in str(a["data-steps"]).split()]
            values = [float(v) for v in str(a["data-values"]).split()]
            self.charts[-1].lines[str(a["data-label"])] = (steps, values)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))  # <rect .../> in SVG: complete in itself

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.errors.append(f"end tag for void element </{tag}>")
        elif not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
        else:
            self.stack.pop()


def read_page(page: str) -> _Reader:
    """Parse ``page``; ``errors`` lists every unbalanced tag (empty for a well-formed page)."""
    reader = _Reader()
    reader.feed(page)
    reader.close()
    if reader.stack:
        reader.errors.append(f"never closed: {reader.stack}")
    return reader
