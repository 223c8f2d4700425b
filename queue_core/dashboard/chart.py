"""Jobs per minute as an inline SVG bar chart, rendered on the server.

Inline SVG needs no script and no network; colours are presentation attributes, not
style attributes, so the Content-Security-Policy (no inline style) does not block them."""

from __future__ import annotations

from .data import Throughput
from .html import Safe, join, render

WIDTH = 600
HEIGHT = 120
PAD = 20


def bar_chart(data: Throughput, label: str) -> Safe:
    minutes = len(data.done)
    top = max([d + f for d, f in zip(data.done, data.failed, strict=True)] + [1])
    slot = (WIDTH - PAD) / minutes
    bars = []
    for index, (done, failed) in enumerate(zip(data.done, data.failed, strict=True)):
        x = PAD + index * slot
        base = float(HEIGHT - PAD)
        for count, colour, kind in ((done, "#2e7d32", "done"), (failed, "#c62828", "failed")):
            if not count:
                continue
            height = (HEIGHT - 2 * PAD) * count / top
            base -= height
            ago = minutes - index
            bars.append(render(
                '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}">'
                "<title>{title}</title></rect>",
                x=f"{x:.1f}", y=f"{base:.1f}", w=f"{max(slot - 1, 1):.1f}", h=f"{height:.1f}",
                fill=colour, title=f"{count} {kind}, {ago} min ago"))
    return render(
        '<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{label}" '
        'xmlns="http://www.w3.org/2000/svg">'
        '<line x1="{pad}" y1="{base}" x2="{width}" y2="{base}" stroke="#888"/>'
        '<text x="0" y="{pad}" font-size="10" fill="#555">{top}</text>'
        '<text x="0" y="{base}" font-size="10" fill="#555">0</text>'
        '<text x="{pad}" y="{bottom}" font-size="10" fill="#555">-60 min</text>'
        '<text x="{right}" y="{bottom}" font-size="10" fill="#555">now</text>'
        '<rect x="{legend}" y="4" width="8" height="8" fill="#2e7d32"/>'
        '<text x="{legend_done}" y="12" font-size="10" fill="#555">done</text>'
        '<rect x="{legend_failed}" y="4" width="8" height="8" fill="#c62828"/>'
        '<text x="{legend_failed_text}" y="12" font-size="10" fill="#555">failed</text>'
        "{bars}</svg>",
        width=WIDTH, height=HEIGHT, label=label, pad=PAD, base=HEIGHT - PAD, top=top,
        bottom=HEIGHT - 4, right=WIDTH - 24, legend=WIDTH - 100, legend_done=WIDTH - 88,
        legend_failed=WIDTH - 56, legend_failed_text=WIDTH - 44, bars=join(bars))
