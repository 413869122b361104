"""Charts as SVG drawn on the server: no script, nothing to load, readable by a screen reader
(each chart has a title and a table of its numbers next to it)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from domain.overview import Series

WIDTH, HEIGHT, PAD = 640, 200, 32
COLOURS = ("#3c4fe0", "#d9480f", "#2b8a3e", "#ae3ec9", "#1098ad", "#e67700")


def _scale(top: float) -> float:
    return top if top > 0 else 1.0


def bars(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """Grouped bars, one group per label."""
    top = _scale(max((v for s in series for _, v in s.points), default=0.0))
    group = (WIDTH - 2 * PAD) / max(len(labels), 1)
    bar = group / (len(series) + 1)
    shapes = []
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        for j, (label, value) in enumerate(s.points):
            h = (HEIGHT - 2 * PAD) * value / top
            x = PAD + j * group + i * bar
            shapes.append(f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{bar:.1f}" '
                          f'height="{h:.1f}" fill="{colour}"><title>{escape(s.name)} '
                          f'{escape(label)}: {value:g}</title></rect>')
    return _frame(title, top, series, shapes)


def lines(title: str, series: Sequence[Series]) -> str:
    top = _scale(max((v for s in series for _, v in s.points), default=0.0))
    shapes = []
    for i, s in enumerate(series):
        n = max(len(s.points) - 1, 1)
        points = " ".join(
            f"{PAD + (WIDTH - 2 * PAD) * k / n:.1f},"
            f"{HEIGHT - PAD - (HEIGHT - 2 * PAD) * v / top:.1f}"
            for k, (_, v) in enumerate(s.points))
        shapes.append(f'<polyline points="{points}" fill="none" stroke-width="2" '
                      f'stroke="{COLOURS[i % len(COLOURS)]}"><title>{escape(s.name)}</title>'
                      '</polyline>')
    return _frame(title, top, series, shapes)


def _frame(title: str, top: float, series: Sequence[Series], shapes: list[str]) -> str:
    legend = "".join(
        f'<text x="{PAD + 150 * i}" y="14" fill="{COLOURS[i % len(COLOURS)]}">'
        f'{escape(s.name[:24])}</text>' for i, s in enumerate(series))
    return (f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>{legend}'
            f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
            f'stroke="currentColor"/><text x="2" y="{PAD + 4}" font-size="11">{top:.3g}</text>'
            f'{"".join(shapes)}</svg>')
