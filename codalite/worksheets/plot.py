"""Line charts as self-contained SVG (no script, no styles, no outside references): inline in
worksheet pages, served as an image by `codalite serve`, written beside paper tables. Every text
drawn comes from bundles (names, keys) and is escaped."""

import html
import math

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
DASHES = ["", "6,3", "2,2", "8,3,2,3"]
MARKERS_UP_TO = 60  # points per series: sparse series (eval steps) get a dot at each point
LEGEND_MAX = 16
L, R, T, B = 62, 16, 12, 40  # margins around the plot area


def nice_ticks(lo, hi, n=5):
    """About n round tick values covering [lo, hi] (finite). Bounded: where a round step is below the
    values' float resolution (1e16 and 1e16 + 4) or the range overflows, the ends alone."""
    if hi == lo:
        lo, hi = lo - (abs(lo) or 1) * 0.5, hi + (abs(hi) or 1) * 0.5
    raw = hi / n - lo / n  # not (hi - lo) / n: that overflows for -1e308..1e308
    if not raw > 0 or not math.isfinite(raw):
        return [lo, hi]
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    for i in range(3 * n + 3):  # step >= (hi - lo) / n: n + 2 ticks reach hi, give or take rounding
        t = round(start + i * step, 12)
        if not math.isfinite(t) or ticks and t <= ticks[-1]:
            return [lo, hi]  # the step does not move the value: no round ticks at this resolution
        ticks.append(t)
        if t >= hi:
            return ticks
    return [lo, hi]


def finite(trajectories):
    """The trajectories with only their finite points: a run's log may hold NaN or inf (a diverged
    loss), which cannot be placed on an axis."""
    return [dict(t, points=[(x, y) for x, y in t["points"] if math.isfinite(x) and math.isfinite(y)])
            for t in trajectories]


def fmt(v):
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def label_of(t, several_keys):
    key = t.get("key")
    text = t["name"] + (f" {key}" if key and several_keys else "")
    if t.get("live"):
        text += " (live)"
    if t.get("truncated"):
        text += " (first 10,000 records)"
    return text


def svg(trajectories, xlabel=None, ylabel=None, width=560, height=300, title=None):
    esc = html.escape
    trajectories = finite(trajectories)
    keys = list(dict.fromkeys(t.get("key") for t in trajectories))
    bundles = list(dict.fromkeys(t["uuid"] for t in trajectories))
    several_keys = len(keys) > 1
    shown = trajectories[:LEGEND_MAX]
    legend_h = 16 * (len(shown) + (1 if len(trajectories) > LEGEND_MAX else 0)) + 4
    total_h = height + legend_h
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' class='graph' width='{width}' height='{total_h}' "
           f"viewBox='0 0 {width} {total_h}' font-family='sans-serif' font-size='11'>"]
    if title:
        out.append(f"<title>{esc(title)}</title>")
    pts = [p for t in trajectories for p in t["points"]]
    pw, ph = width - L - R, height - T - B
    out.append(f"<rect x='{L}' y='{T}' width='{pw}' height='{ph}' fill='#fff' stroke='#bbb'/>")
    if pts:
        xt = nice_ticks(min(p[0] for p in pts), max(p[0] for p in pts))
        yt = nice_ticks(min(p[1] for p in pts), max(p[1] for p in pts))
        x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

        def sx(x):  # halves first: x1 - x0 overflows for -1e308..1e308
            return L + (x / 2 - x0 / 2) / ((x1 / 2 - x0 / 2) or 1) * pw

        def sy(y):
            return T + ph - (y / 2 - y0 / 2) / ((y1 / 2 - y0 / 2) or 1) * ph
        for v in xt:
            out.append(f"<line x1='{sx(v):.1f}' y1='{T}' x2='{sx(v):.1f}' y2='{T + ph}' stroke='#eee'/>"
                       f"<text x='{sx(v):.1f}' y='{T + ph + 14}' text-anchor='middle' fill='#444'>{fmt(v)}</text>")
        for v in yt:
            out.append(f"<line x1='{L}' y1='{sy(v):.1f}' x2='{L + pw}' y2='{sy(v):.1f}' stroke='#eee'/>"
                       f"<text x='{L - 4}' y='{sy(v) + 4:.1f}' text-anchor='end' fill='#444'>{fmt(v)}</text>")
        for i, t in enumerate(trajectories):
            color, dash = style(t, bundles, keys)
            coords = [(sx(x), sy(y)) for x, y in t["points"]]
            name = esc(label_of(t, several_keys))
            out.append(f"<g class='series' data-uuid='{esc(t['uuid'])}' data-key='{esc(t.get('key') or '')}'>"
                       f"<title>{name}</title>")
            if len(coords) > 1:
                line = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
                out.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.6'"
                           f"{f' stroke-dasharray={chr(39)}{dash}{chr(39)}' if dash else ''} points='{line}'/>")
            if len(coords) <= MARKERS_UP_TO:
                out += [f"<circle cx='{a:.1f}' cy='{b:.1f}' r='2.6' fill='{color}'/>" for a, b in coords]
            out.append("</g>")
    else:
        out.append(f"<text x='{L + pw / 2}' y='{T + ph / 2}' text-anchor='middle' fill='#888'>"
                   f"{'no points yet (live)' if any(t.get('live') for t in trajectories) else 'no points'}</text>")
    out.append(f"<text x='{L + pw / 2}' y='{height - 6}' text-anchor='middle'>{esc(xlabel or '')}</text>")
    if ylabel:
        out.append(f"<text transform='translate(12,{T + ph / 2}) rotate(-90)' text-anchor='middle'>{esc(ylabel)}</text>")
    for i, t in enumerate(shown):  # the legend: which line is which bundle (and key)
        color, dash = style(t, bundles, keys)
        y = height + 12 + 16 * i
        note = "" if t["points"] else " (no points)"
        out.append(f"<line x1='{L}' y1='{y - 4}' x2='{L + 24}' y2='{y - 4}' stroke='{color}' stroke-width='2'"
                   f"{f' stroke-dasharray={chr(39)}{dash}{chr(39)}' if dash else ''}/>"
                   f"<text class='legend' x='{L + 30}' y='{y}'>{esc(label_of(t, several_keys) + note)}</text>")
    if len(trajectories) > LEGEND_MAX:
        out.append(f"<text x='{L + 30}' y='{height + 12 + 16 * len(shown)}'>+{len(trajectories) - LEGEND_MAX} more</text>")
    out.append("</svg>")
    return "".join(out)


def style(t, bundles, keys):
    """Color by bundle and dash by key; a single bundle's keys get colors instead."""
    bi, ki = bundles.index(t["uuid"]), keys.index(t.get("key"))
    if len(bundles) == 1:
        return COLORS[ki % len(COLORS)], ""
    return COLORS[bi % len(COLORS)], DASHES[ki % len(DASHES)]
