"""`mlplint probe --html FILE`: one self-contained page (inline SVG, inline CSS, no script, nothing
fetched from the network) with the loss curves of the run, of each trial and of scikit-learn's fit,
the differences table, the trials and the findings. Formats the probe's JSON document only."""

from __future__ import annotations

import html
import math
from typing import Any, Optional, Sequence

from mlplint.probe.comparison_report import answer
from mlplint.probe.trials import diverged

WIDTH, HEIGHT = 720, 320
MARGIN = {"left": 72, "right": 16, "top": 16, "bottom": 40}
# A diverging curve is clipped at this multiple of the run as written's first loss (raised to the
# top of the other curves, so that only the diverging ones are clipped).
CLIP_FACTOR = 1.5
# Curves closer than this everywhere hide each other: the later one is dashed.
COINCIDE_PIXELS = 1.5
DASHES = ["9 6", "3 4", "12 4 2 4"]
# About this many ticks on an axis.
TICKS = 6
COLORS = ["#1f6fd1", "#d1495b", "#2a9d5c", "#e0a100", "#7b4bc4", "#00a0b0", "#c45b9f", "#6b6b6b"]
SKLEARN_COLOR = "#ef7d00"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 980px; color: #1b1b1b; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.answer { font-size: 17px; font-weight: 600; padding: 10px 14px; background: #f1f5fb; border-left: 4px solid #1f6fd1; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; overflow-wrap: anywhere; } th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #ddd; }
th { background: #f6f6f6; } .from { color: #666; font-size: 12px; } code { font-size: 13px; }
.legend span { display: inline-block; margin-right: 16px; } .swatch { margin-right: 4px; vertical-align: 0; }
svg text { font: 11px system-ui, sans-serif; fill: #444; } svg text.marker { font-weight: 600; }
.sev { font-weight: 600; padding: 0 6px; border-radius: 3px; color: #fff; } .sev-error { background: #c62828; }
.sev-warning { background: #b26a00; } .sev-info { background: #1565c0; }
.verdict { font-weight: 600; } .verdict-helps { color: #1b7f3b; } .verdict-worse, .verdict-diverged, .verdict-failed { color: #c62828; }
.narrow { width: 14%; } .combined td { background: #f1f5fb; }
"""


def write_html(document: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render(document))


def render(document: dict[str, Any]) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mlplint probe: {e(str(document.get('script')))}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>mlplint probe: <code>{e(str(document.get('script')))}</code></h1>"]
    if "baseline" in document or "trials" in document:
        parts.append(f"<p class=\"answer\">{e(answer(document))}</p>")
    parts.append(f"<p>status <b>{e(str(document.get('status')))}</b> after {document.get('steps')} optimizer steps on "
                 f"{e(str(document.get('device')))}{' &mdash; ' + e(document['error']) if document.get('error') else ''}</p>")
    parts += _curves(document)
    baseline = document.get("baseline")
    if baseline is not None:
        parts += _baseline(baseline)
    if document.get("trials") is not None:
        parts += _trials(document["trials"], document.get("untried", []))
    parts += _findings(document)
    parts.append("</body></html>\n")
    return "".join(parts)


def _curves(document: dict[str, Any]) -> list[str]:
    series = [("as written", document.get("loss") or [], COLORS[0])]
    for index, trial in enumerate(document.get("trials") or []):
        if trial.get("loss"):
            name = f"all fixes together ({'/'.join(trial['codes'])})" if trial.get("combined") else f"trial: {'/'.join(trial['codes'])}"
            series.append((f"{name} {trial.get('short') or trial['change']}", trial["loss"], COLORS[(index + 1) % len(COLORS)]))
    parts = ["<h2>Training loss per optimizer step</h2>", chart(series, "optimizer step", "loss", "run-loss")]
    sklearn = (document.get("baseline") or {}).get("sklearn") or {}
    if sklearn.get("loss_curve"):
        parts += ["<h2>scikit-learn's default MLP: training loss per epoch (its loss_curve_)</h2>",
                  chart([(f"{sklearn.get('estimator')} defaults", sklearn["loss_curve"], SKLEARN_COLOR)], "epoch", "loss", "sklearn-loss")]
    return parts


def chart(series: Sequence[tuple[str, Sequence[Optional[float]], str]], x_label: str, y_label: str, name: str) -> str:
    """An SVG line chart, one polyline per run of finite values of each series (the first is the
    run as written); a log y axis when the values drawn span more than two orders of magnitude. A
    curve that diverges is clipped at CLIP_FACTOR times the first curve's start (or higher, so
    that no other curve is clipped), and at the lowest value of the others, and marked "diverged";
    a curve that coincides with an earlier one is dashed over it, and the legend says so."""
    e = html.escape
    finite = [[v for v in ys if v is not None and math.isfinite(v)] for _, ys, _ in series]
    if not any(finite):
        legend = "".join(f"<span>{_swatch(color, None)}{e(label)}</span>" for label, _, color in series)
        return f"<p class=\"legend\">{legend}</p><p>No finite loss was recorded.</p>"
    blown = [diverged(ys) for _, ys, _ in series]
    kept = [v for values, out in zip(finite, blown) if not out for v in values]
    cap = floor = None
    if any(blown) and kept and finite[0] and finite[0][0] > 0:
        # the axis is the other curves'; a diverging curve is pinned to its top (and to its
        # bottom when it swings below the others, as a loss that blows up then hits 0 does)
        cap, floor = max(CLIP_FACTOR * finite[0][0], max(kept)), min(kept)
    shown = [[None if v is None or not math.isfinite(v) else min(max(v, floor), cap) if out and cap else v for v in ys]
             for (_, ys, _), out in zip(series, blown)]
    values = [v for ys in shown for v in ys if v is not None]
    log = min(values) > 0 and max(values) / min(values) > 100
    transform = math.log10 if log else (lambda v: v)
    ticks = _log_ticks(min(values), max(values)) if log else _linear_ticks(min(values), max(values))
    low, high = transform(ticks[0]), transform(ticks[-1])
    steps = max(max(len(ys) for ys in shown) - 1, 1)
    inner_w = WIDTH - MARGIN["left"] - MARGIN["right"]
    inner_h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]
    first = 1 if x_label == "epoch" else 0

    def x_of(i: float) -> float:
        return MARGIN["left"] + inner_w * i / steps

    def y_of(v: float) -> float:
        return MARGIN["top"] + inner_h * (1 - (transform(v) - low) / (high - low))

    body = [f"<line x1=\"{MARGIN['left']}\" y1=\"{MARGIN['top'] + inner_h}\" x2=\"{WIDTH - MARGIN['right']}\" y2=\"{MARGIN['top'] + inner_h}\" stroke=\"#888\"/>",
            f"<line x1=\"{MARGIN['left']}\" y1=\"{MARGIN['top']}\" x2=\"{MARGIN['left']}\" y2=\"{MARGIN['top'] + inner_h}\" stroke=\"#888\"/>"]
    for tick in ticks:
        y = y_of(tick)
        body.append(f"<line x1=\"{MARGIN['left']}\" y1=\"{y:.1f}\" x2=\"{WIDTH - MARGIN['right']}\" y2=\"{y:.1f}\" stroke=\"#eee\"/>"
                    f"<text class=\"tick\" x=\"{MARGIN['left'] - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">{tick:g}</text>")
    for i in _linear_ticks(first, steps + first, integers=True):
        if first <= i <= steps + first:
            body.append(f"<text class=\"tick\" x=\"{x_of(i - first):.1f}\" y=\"{HEIGHT - MARGIN['bottom'] + 16}\" text-anchor=\"middle\">{i:g}</text>")
    body.append(f"<text x=\"{MARGIN['left'] + inner_w / 2:.0f}\" y=\"{HEIGHT - 6}\" text-anchor=\"middle\">{e(x_label)}</text>")
    body.append(f"<text x=\"14\" y=\"{MARGIN['top'] + inner_h / 2:.0f}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {MARGIN['top'] + inner_h / 2:.0f})\">"
                f"{e(y_label)}{' (log scale)' if log else ''}</text>")
    coincides = _coinciding(shown, lambda v: y_of(v))
    legend = []
    for index, ((label, ys, color), values) in enumerate(zip(series, shown)):
        dash = DASHES[(index - 1) % len(DASHES)] if coincides[index] is not None else None
        width = 4 if index in coincides.values() else 2
        for run in _finite_runs(values):
            if len(run) == 1:
                i, v = run[0]
                body.append(f"<circle class=\"curve\" data-series=\"{index}\" cx=\"{x_of(i):.1f}\" cy=\"{y_of(v):.1f}\" r=\"2.5\" fill=\"{color}\"/>")
            else:
                points = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in run)
                body.append(f"<polyline class=\"curve\" data-series=\"{index}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" "
                            f"{f'stroke-dasharray={chr(34)}{dash}{chr(34)} ' if dash else ''}points=\"{points}\"><title>{e(label)}</title></polyline>")
        notes = []
        if blown[index]:
            notes.append(f"diverged: reaches {_biggest(ys)}, clipped at {cap:.3g}" if cap else "diverged")
            if cap:
                at = next((i for i, v in enumerate(ys) if v is None or not math.isfinite(v) or v >= cap), None)
                if at is not None:
                    anchor = "end" if at > steps / 2 else "start"
                    body.append(f"<text class=\"marker\" x=\"{x_of(at) + (-4 if anchor == 'end' else 4):.1f}\" y=\"{MARGIN['top'] + 12}\" "
                                f"text-anchor=\"{anchor}\" style=\"fill:{color}\">{e(label.split(' (')[0].split(' the ')[0])} diverged &#8593;</text>")
        if coincides[index] is not None:
            notes.append(f"coincides with {series[coincides[index]][0]}")
        legend.append(f"<span>{_swatch(color, dash)}{e(label)}{' (' + e('; '.join(notes)) + ')' if notes else ''}</span>")
    return (f"<p class=\"legend\">{''.join(legend)}</p><svg id=\"{name}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" "
            f"viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{e(y_label)} per {e(x_label)}\">{''.join(body)}</svg>")


def _swatch(color: str, dash: Optional[str]) -> str:
    pattern = f" stroke-dasharray=\"{dash}\"" if dash else ""
    return f"<svg class=\"swatch\" width=\"28\" height=\"10\"><line x1=\"0\" y1=\"5\" x2=\"28\" y2=\"5\" stroke=\"{color}\" stroke-width=\"3\"{pattern}/></svg>"


def _biggest(values: Sequence[Optional[float]]) -> str:
    if any(v is None or not math.isfinite(v) for v in values):
        return "non-finite values"
    return f"{max(values):.3g}"


def _coinciding(series: list[list[Optional[float]]], y_of: Any) -> dict[int, Optional[int]]:
    """index -> the earlier curve it coincides with (within COINCIDE_PIXELS everywhere), or None."""
    found: dict[int, Optional[int]] = {}
    for index, values in enumerate(series):
        found[index] = None
        for earlier in range(index):
            other = series[earlier]
            if found[earlier] is None and len(other) == len(values) and any(v is not None for v in values) and all(
                    (a is None) == (b is None) and (a is None or abs(y_of(a) - y_of(b)) < COINCIDE_PIXELS) for a, b in zip(values, other)):
                found[index] = earlier
                break
    return found


def _linear_ticks(low: float, high: float, integers: bool = False) -> list[float]:
    """About TICKS evenly spaced round values (steps of 1, 2 or 5 times a power of ten) that cover
    [low, high]."""
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    raw = (high - low) / TICKS
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if integers:
        step = max(1, round(step))
    start = math.floor(low / step + 1e-9)
    count = math.ceil(high / step - 1e-9) - start
    return [round((start + k) * step, 12) for k in range(count + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten that cover [low, high], with 2 and 5 between them over three decades or fewer."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    ticks = [10.0 ** k for k in range(first, last + 1)]
    if last - first <= 3:
        ticks = sorted(t * m for t in ticks for m in (1, 2, 5) if t * m <= 10.0 ** last)
        while len(ticks) > 2 and ticks[1] <= low:
            ticks.pop(0)
        while len(ticks) > 2 and ticks[-2] >= high:
            ticks.pop()
    return ticks


def _finite_runs(values: Sequence[Optional[float]]) -> list[list[tuple[int, float]]]:
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if v is not None and math.isfinite(v):
            runs[-1].append((i, v))
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _number(value: Optional[float]) -> str:
    return "unknown" if value is None else f"{value:.3g}"


def _baseline(baseline: dict[str, Any]) -> list[str]:
    e = html.escape
    parts = ["<h2>Baseline</h2>"]
    if baseline.get("skipped"):
        parts.append(f"<p>Skipped: {e(baseline['skipped'])}</p>")
    else:
        sklearn = baseline.get("sklearn") or {}
        parts.append(f"<table><tr><th></th><th>{e(str(baseline.get('metric')))} on {baseline.get('held_back')} held-back rows</th>"
                     f"<th>training loss</th><th>length</th></tr>"
                     f"<tr><td>this script</td><td>{_number(baseline['script']['metric'])}</td><td>{_number(baseline['script']['loss'])}</td>"
                     f"<td>{baseline['script']['steps']} steps</td></tr>"
                     f"<tr><td>scikit-learn {e(str(sklearn.get('estimator')))} (defaults)</td><td>{_number(sklearn.get('metric'))}</td>"
                     f"<td>{_number(sklearn.get('loss'))}</td><td>{sklearn.get('iterations')} epochs</td></tr></table>")
    rows = baseline.get("differences") or []
    if rows:
        parts.append("<h2>Differences</h2><table><tr><th>setting</th><th>this script</th><th>scikit-learn default</th>"
                     "<th>Keras default</th><th>where the defaults are set</th></tr>")
        for row in rows:
            parts.append(f"<tr><td>{e(row['setting'])}</td><td>{e(row['script'])}<div class=\"from\">from: {e(row['script_from'])}</div></td>"
                         f"<td>{e(row['sklearn'])}</td><td>{e(row['keras'])}</td><td class=\"from\">{e(row['defaults_from'])}</td></tr>")
        parts.append("</table>")
    return parts


def _trials(trials: list[dict[str, Any]], untried: list[dict[str, Any]]) -> list[str]:
    e = html.escape
    parts = ["<h2>Trials</h2>"]
    if not trials:
        parts.append("<p>No trial: no finding has an autofix or a runtime intervention.</p>")
    else:
        parts.append("<table><tr><th class=\"narrow\">codes</th><th>change</th><th class=\"narrow\">verdict</th><th>effect</th></tr>")
        for trial in trials:
            change = f"all together: {trial['short']}" if trial.get("combined") else f"{trial['change']} ({trial['fix']})"
            verdict = trial["verdict"]
            row = "<tr class=\"combined\">" if trial.get("combined") else "<tr>"
            parts.append(f"{row}<td>{e(', '.join(trial['codes']))}</td><td>{e(change)}</td>"
                         f"<td class=\"verdict verdict-{verdict.replace(' ', '-')}\">{e(verdict)}</td><td>{_inline(trial['effect'])}</td></tr>")
        parts.append("</table>")
    if untried:
        parts.append("<p>Not tried: " + "; ".join(e(f"{u['code']} (line {u['line']}): {u['reason']}") for u in untried) + "</p>")
    return parts


def _findings(document: dict[str, Any]) -> list[str]:
    e = html.escape
    parts = ["<h2>Findings</h2>"]
    rows = [(s["code"], s["severity"], s["message"], "runtime symptom") for s in document.get("symptoms", [])]
    for f in document.get("findings", []):
        runtime = f.get("runtime") or {}
        rows.append((f["code"], f["severity"], f"line {f['line']}: {f['message']}",
                     f"{runtime.get('status', '')}: {runtime.get('evidence', '')}" if runtime else ""))
    if not rows:
        return parts + ["<p>No runtime symptoms and no static findings.</p>"]
    parts.append("<table><tr><th class=\"narrow\">code</th><th class=\"narrow\">severity</th><th>message</th><th>probe</th></tr>")
    parts += [f"<tr><td>{e(c)}</td><td><span class=\"sev sev-{e(s)}\">{e(s)}</span></td><td>{_inline(m)}</td><td class=\"from\">{_inline(r)}</td></tr>"
              for c, s, m, r in rows]
    parts.append("</table>")
    return parts


def _inline(text: str) -> str:
    """Escaped text with its `code spans` as <code> (a message's Markdown backticks) and its
    "before -> after" arrows as one character that does not break across lines."""
    escaped = html.escape(text).replace(" -&gt; ", "&nbsp;&rarr; ")
    pieces = escaped.split("`")
    if len(pieces) % 2 == 0:  # an unpaired backtick: leave the text as it is
        return escaped
    return "".join(f"<code>{piece}</code>" if index % 2 else piece for index, piece in enumerate(pieces))
