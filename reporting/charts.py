"""Inline SVG charts for the run report: no JavaScript, no fonts or scripts from the network.

The report must open from a file on a machine without internet (and in a CI artifact viewer),
so each chart is a self-contained `<svg class="chart">` with a `<title>` for screen readers and
tooltips. Values arrive already computed; these functions only lay them out.
"""

from __future__ import annotations

import html
import math
from typing import Optional, Sequence

WIDTH = 640
_BAR_HEIGHT = 18
_LEFT = 170
_COLORS = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6")


def bar_chart(title: str, bars: Sequence[tuple[str, float]], value_format: str = "{:.3f}",
              marker: Optional[tuple[float, str]] = None, maximum: Optional[float] = None) -> str:
    """Horizontal bars, one per (label, value); `marker` draws a labelled vertical line."""
    top = maximum if maximum is not None else max([value for _, value in bars] + [1e-9])
    if marker:
        top = max(top, marker[0])
    plot_width = WIDTH - _LEFT - 70
    height = 30 + _BAR_HEIGHT * len(bars) + 20
    parts = [_open(title, height), _text(8, 16, title, weight="bold")]
    for index, (label, value) in enumerate(bars):
        y = 26 + index * _BAR_HEIGHT
        width = 0 if top <= 0 else plot_width * max(value, 0.0) / top
        parts.append(_text(_LEFT - 6, y + 13, _shorten(label, 26), anchor="end"))
        parts.append(f'<rect class="bar" x="{_LEFT}" y="{y + 2}" width="{width:.1f}" '
                     f'height="{_BAR_HEIGHT - 4}" fill="{_COLORS[0]}"><title>'
                     f'{html.escape(label)}: {value_format.format(value)}</title></rect>')
        parts.append(_text(_LEFT + width + 4, y + 13, value_format.format(value)))
    if marker:
        x = _LEFT + plot_width * marker[0] / top if top > 0 else _LEFT
        bottom = 26 + _BAR_HEIGHT * len(bars)
        parts.append(f'<line x1="{x:.1f}" y1="22" x2="{x:.1f}" y2="{bottom}" stroke="#d00" '
                     'stroke-dasharray="4 3"/>')
        parts.append(_text(x, bottom + 14, marker[1], anchor="middle", color="#d00"))
    return "".join(parts) + "</svg>"


def histogram(title: str, bins: Sequence[tuple[float, float, int]],
              marker: Optional[tuple[float, str]] = None, x_label: str = "") -> str:
    """Vertical bars over [low, high) bins; `marker` draws a labelled line at an x value."""
    height, bottom, left, right = 220, 180, 50, WIDTH - 20
    low, high = bins[0][0], bins[-1][1]
    tallest = max([count for _, _, count in bins] + [1])

    def x_of(value: float) -> float:
        return left + (right - left) * (value - low) / ((high - low) or 1)

    parts = [_open(title, height), _text(8, 16, title, weight="bold")]
    for start, end, count in bins:
        bar_height = (bottom - 30) * count / tallest
        parts.append(f'<rect class="bar" x="{x_of(start):.1f}" y="{bottom - bar_height:.1f}" '
                     f'width="{max(x_of(end) - x_of(start) - 1, 1):.1f}" '
                     f'height="{bar_height:.1f}" fill="{_COLORS[0]}"><title>'
                     f'{start:g}-{end:g}: {count}</title></rect>')
    parts.append(_axis(left, right, bottom))
    for value in (low, (low + high) / 2, high):
        parts.append(_text(x_of(value), bottom + 14, f"{value:g}", anchor="middle"))
    parts.append(_text(left - 6, 34, str(tallest), anchor="end"))
    if x_label:
        parts.append(_text((left + right) / 2, bottom + 32, x_label, anchor="middle"))
    if marker and low <= marker[0] <= high:
        x = x_of(marker[0])
        parts.append(f'<line x1="{x:.1f}" y1="26" x2="{x:.1f}" y2="{bottom}" stroke="#d00" '
                     'stroke-dasharray="4 3"/>')
        # The label goes on whichever side of the line has room.
        near_right = x > (left + right) / 2
        parts.append(_text(x - 4 if near_right else x + 4, 36, marker[1],
                           anchor="end" if near_right else "start", color="#d00"))
    return "".join(parts) + "</svg>"


def line_chart(title: str, series: dict[str, Sequence[tuple[float, float]]],
               x_label: str = "step") -> str:
    """One polyline (with points) per named series of (x, y)."""
    height, bottom, left, right = 240, 190, 60, WIDTH - 130
    points = [point for values in series.values() for point in values]
    x_low, x_high = min(x for x, _ in points), max(x for x, _ in points)
    y_low, y_high = min(y for _, y in points), max(y for _, y in points)
    if math.isclose(y_low, y_high):
        y_low, y_high = y_low - 0.5, y_high + 0.5

    def place(x: float, y: float) -> tuple[float, float]:
        return (left + (right - left) * (x - x_low) / ((x_high - x_low) or 1),
                bottom - (bottom - 30) * (y - y_low) / (y_high - y_low))

    parts = [_open(title, height), _text(8, 16, title, weight="bold"), _axis(left, right, bottom)]
    for value in (y_low, y_high):
        parts.append(_text(left - 6, place(x_low, value)[1] + 4, f"{value:.3g}", anchor="end"))
    for value in (x_low, x_high):
        parts.append(_text(place(value, y_low)[0], bottom + 14, f"{value:g}", anchor="middle"))
    parts.append(_text((left + right) / 2, bottom + 32, x_label, anchor="middle"))
    for index, (name, values) in enumerate(series.items()):
        color = _COLORS[index % len(_COLORS)]
        placed = [place(x, y) for x, y in sorted(values)]
        parts.append(f'<polyline class="series" fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in placed)}"/>')
        for (x, y), (step, value) in zip(placed, sorted(values)):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"><title>'
                         f'{html.escape(name)} at {step:g}: {value:.4g}</title></circle>')
        legend_y = 40 + 18 * index
        parts.append(f'<rect x="{right + 12}" y="{legend_y - 9}" width="10" height="10" '
                     f'fill="{color}"/>')
        parts.append(_text(right + 26, legend_y, _shorten(name, 14)))
    return "".join(parts) + "</svg>"


def confusion_matrix(title: str, labels: Sequence[str], counts: Sequence[Sequence[float]]) -> str:
    """A labels x labels grid (rows: actual, columns: predicted), shaded by share of its row."""
    cell = min(80, (WIDTH - 160) // max(len(labels), 1))
    left, top = 140, 50
    height = top + cell * len(labels) + 30
    parts = [_open(title, height), _text(8, 16, title, weight="bold"),
             _text(left + cell * len(labels) / 2, 40, "predicted", anchor="middle")]
    for column, label in enumerate(labels):
        parts.append(_text(left + cell * (column + 0.5), top + cell * len(labels) + 16,
                           _shorten(label, 12), anchor="middle"))
    for row, (label, row_counts) in enumerate(zip(labels, counts)):
        total = sum(row_counts) or 1
        parts.append(_text(left - 8, top + cell * (row + 0.5) + 4,
                           f"actual {_shorten(label, 12)}", anchor="end"))
        for column, count in enumerate(row_counts):
            share = count / total
            parts.append(
                f'<rect class="cell" x="{left + cell * column}" y="{top + cell * row}" '
                f'width="{cell - 2}" height="{cell - 2}" fill="rgba(51,102,204,{0.1 + 0.9 * share:.2f})">'
                f'<title>actual {html.escape(label)}, predicted {html.escape(labels[column])}: '
                f'{count:g} ({share:.1%} of the row)</title></rect>')
            parts.append(_text(left + cell * (column + 0.5), top + cell * (row + 0.5) + 4,
                               f"{count:g}", anchor="middle",
                               color="#fff" if share > 0.5 else "#000"))
    return "".join(parts) + "</svg>"


def _open(title: str, height: int) -> str:
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-label="{html.escape(title)}" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}"><title>{html.escape(title)}</title>')


def _axis(left: float, right: float, bottom: float) -> str:
    return (f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>'
            f'<line x1="{left}" y1="26" x2="{left}" y2="{bottom}" stroke="#888"/>')


def _text(x: float, y: float, text: str, anchor: str = "start", weight: str = "normal",
          color: str = "#222") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{color}" font-size="12">{html.escape(text)}</text>')


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[:length - 1] + "…"
