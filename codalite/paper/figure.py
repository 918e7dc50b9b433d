r"""Paper figures: training curves declared beside the tables (`figures:` in the YAML), read from the
selected bundles' JSON logs (worksheets/curves.py), exported as

  <name>.svg              the chart (worksheets/plot.py); <name>.md embeds it
  <name>.tex              a figure environment to \input: a LaTeX picture drawn with graphicx's
                          \rotatebox and \rule, so pdflatex with only texlive-latex-recommended
                          compiles it (no TikZ, pict2e, svg package or inkscape), in the paper's fonts
  <name>.csv              every plotted point
  <name>.provenance.json  every bundle behind the figure, a hash of each series' points and of the
                          written files; `codalite verify` re-derives the points from the store
"""

import csv
import hashlib
import io
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from ..search import search
from ..worksheets import curves, plot
from ..worksheets.genpath import display
from ..worksheets.interpret import Interpreter
from .declare import FigureSpec
from .latex import bundle_url, csv_text, plain, tex
from .provenance import bundle_provenance
from .table import TableError, _sort_key


@dataclass
class Series:
    uuid: str
    name: str  # the bundle's name
    label: str  # its name in the legend
    key: str
    points: list  # [(x, y)], sorted by x


@dataclass
class Figure:
    spec: FigureSpec
    bundles: list  # legend order
    series: list

    def labels(self):
        return {s.uuid: s.label for s in self.series}


def series_hash(points):
    """sha256 of the points as JSON (floats as repr: exact)."""
    return hashlib.sha256(json.dumps([[x, y] for x, y in points]).encode()).hexdigest()


def figure_hash(series):
    return hashlib.sha256(json.dumps([[s.uuid, s.key, series_hash(s.points)] for s in series]).encode()).hexdigest()


def read_series(store, spec, b, label):
    """One Series per y key of bundle b; refuses a missing log or key (an empty line would say nothing)."""
    what = f"figure {spec.name}: bundle {b.uuid} ({b.name})"
    recs = curves.read_records(store, b, spec.file)
    if recs is None:
        raise TableError(f"{what} has no {spec.file} holding a list of records (JSON objects)")
    if recs.truncated:
        raise TableError(f"{what}: {spec.file} has over {curves.MAX_RECORDS:,} records; a paper figure "
                         "draws all of them or none")
    out = []
    for key in spec.y:
        pts = curves.points(recs.rows, spec.x, key)
        if not pts:
            raise TableError(f"{what}: no record of {spec.file} has both {spec.x!r} and {key!r} as numbers; "
                             f"fix `x`/`y` or narrow `bundles`")
        out.append(Series(b.uuid, b.name, label, key, pts))
    return out


def compute(store, spec):
    """The figure the declaration describes, from the bundles its search finds now."""
    bundles = search(store, spec.keywords())
    if not bundles:
        raise TableError(f"figure {spec.name}: no ready bundle matches {' '.join(spec.bundles)}")
    bundles.sort(key=lambda b: b.id)  # oldest first: the newest of a rerun wins
    interp, chosen = Interpreter(store), dict[str, Any]()
    for b in bundles:
        v = interp.value(b, spec.label, None)
        if v is None:
            raise TableError(f"figure {spec.name}: bundle {b.uuid} ({b.name}) has no label ({spec.label}); "
                             "fix `label` or narrow `bundles`")
        old = chosen.get(display(v))
        if old is not None and old.command != b.command:  # not a rerun: two runs one legend entry can't tell apart
            raise TableError(f"figure {spec.name}: bundles {old.uuid} and {b.uuid} are both labelled "
                             f"{display(v)!r} ({spec.label}) but ran different commands; set `label` to a "
                             "genpath that tells them apart or narrow `bundles`")
        chosen[display(v)] = b
    order = sorted(chosen, key=lambda lab: _sort_key((lab,)))
    series = [s for lab in order for s in read_series(store, spec, chosen[lab], lab)]
    return Figure(spec, [chosen[lab] for lab in order], series)


# --- exports --------------------------------------------------------------------------------------

def ylabel(spec):
    return spec.ylabel or (spec.y[0] if len(spec.y) == 1 else None)


def caption_tex(spec):
    """The author's LaTeX, passed through; without one, what the lines are (escaped)."""
    return spec.caption.strip() or tex(f"{', '.join(spec.y)} per {spec.x}, one line per bundle.")


def caption_text(spec):
    return plain(spec.caption).strip() or f"{', '.join(spec.y)} per {spec.x}, one line per bundle."


def trajectories(fig):
    return [{"uuid": s.uuid, "name": s.label, "key": s.key, "points": s.points, "live": False} for s in fig.series]


def to_svg(fig):
    spec = fig.spec
    return plot.svg(trajectories(fig), xlabel=spec.xlabel or spec.x, ylabel=ylabel(spec), title=caption_text(spec)) + "\n"


# The LaTeX picture, in \unitlength = \linewidth / W: it fills the column, text stays in the paper's
# font sizes. Lines are rules turned by \rotatebox (core LaTeX draws only a few slopes).
W, PLOT_H, LEFT, RIGHT, TOP, BOTTOM, ROW = 320, 150, 42, 6, 6, 32, 12


def _rgb(hexcolor):
    return ",".join(f"{int(hexcolor[i:i + 2], 16) / 255:.3f}" for i in (1, 3, 5))


def _num(v):
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _segment(a, b):
    (x1, y1), (x2, y2) = a, b
    length = math.hypot(x2 - x1, y2 - y1)
    if length < 1e-3:
        return ""
    angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
    return rf"\put({_num(x1)},{_num(y1)}){{\rotatebox{{{angle:.2f}}}{{\rule[-.4pt]{{{length:.3f}\unitlength}}{{.8pt}}}}}}"


def _dashed(coords, dash):
    """The polyline's pieces: all of it, or the 'on' stretches of an SVG dash pattern ('6,3')."""
    pairs = list(zip(coords, coords[1:]))
    if not dash:
        return pairs
    pattern = [float(v) * 0.6 for v in dash.split(",")]  # SVG px of a 560-wide chart -> our units
    out, i, left, on = [], 0, pattern[0], True
    for (x1, y1), (x2, y2) in pairs:
        seg, pos = math.hypot(x2 - x1, y2 - y1), 0.0
        while seg - pos > 1e-9:
            step = min(left, seg - pos)
            if on:
                t0, t1 = pos / seg, (pos + step) / seg
                out.append(((x1 + (x2 - x1) * t0, y1 + (y2 - y1) * t0), (x1 + (x2 - x1) * t1, y1 + (y2 - y1) * t1)))
            pos += step
            left -= step
            if left <= 1e-9:
                i, on = i + 1, not on
                left = pattern[i % len(pattern)]
    return out


def to_latex(fig, base_url):
    spec, ts = fig.spec, trajectories(fig)
    uuids = list(dict.fromkeys(t["uuid"] for t in ts))
    keys = list(dict.fromkeys(t["key"] for t in ts))
    # two legend columns when there are many short names (a column is about 27 \scriptsize characters wide)
    cols = 2 if len(ts) > 3 and max(len(plot.label_of(t, len(keys) > 1)) for t in ts) <= 26 else 1
    legend_h = ROW * math.ceil(len(ts) / cols) + 4
    y0 = legend_h + BOTTOM  # the plot area's bottom
    pw = W - LEFT - RIGHT
    height = y0 + PLOT_H + TOP
    pts = [p for t in ts for p in t["points"]]
    xt = plot.nice_ticks(min(p[0] for p in pts), max(p[0] for p in pts))
    yt = plot.nice_ticks(min(p[1] for p in pts), max(p[1] for p in pts))

    def sx(x):
        return LEFT + (x - xt[0]) / ((xt[-1] - xt[0]) or 1) * pw

    def sy(y):
        return y0 + (y - yt[0]) / ((yt[-1] - yt[0]) or 1) * PLOT_H

    out = [f"% generated by `codalite export`: the curves of the bundles listed in {spec.name}.provenance.json",
           r"% needs \usepackage{graphicx}, \usepackage{color} (or xcolor) and \usepackage{hyperref}",
           r"\begin{figure}[t]", r"\centering", rf"\setlength{{\unitlength}}{{\dimexpr\linewidth/{W}\relax}}",
           rf"\begin{{picture}}({W},{_num(height)})", r"{\color[gray]{0.88}%"]
    for v in xt:
        out.append(rf"\put({_num(sx(v))},{_num(y0)}){{\line(0,1){{{PLOT_H}}}}}")
    for v in yt:
        out.append(rf"\put({LEFT},{_num(sy(v))}){{\line(1,0){{{pw}}}}}")
    out.append(r"}{\color[gray]{0.6}%")
    out += [rf"\put({LEFT},{_num(y0)}){{\line(1,0){{{pw}}}}}", rf"\put({LEFT},{_num(y0 + PLOT_H)}){{\line(1,0){{{pw}}}}}",
            rf"\put({LEFT},{_num(y0)}){{\line(0,1){{{PLOT_H}}}}}", rf"\put({LEFT + pw},{_num(y0)}){{\line(0,1){{{PLOT_H}}}}}",
            "}%"]
    out += [rf"\put({_num(sx(v))},{_num(y0 - 6)}){{\makebox(0,0)[t]{{\scriptsize {tex(plot.fmt(v))}}}}}" for v in xt]
    out += [rf"\put({LEFT - 3},{_num(sy(v))}){{\makebox(0,0)[r]{{\scriptsize {tex(plot.fmt(v))}}}}}" for v in yt]
    out.append(rf"\put({_num(LEFT + pw / 2)},{_num(y0 - 21)}){{\makebox(0,0)[t]{{\footnotesize {tex(spec.xlabel or spec.x)}}}}}")
    if ylabel(spec):
        out.append(rf"\put(6,{_num(y0 + PLOT_H / 2)}){{\makebox(0,0){{\rotatebox{{90}}{{\footnotesize {tex(ylabel(spec))}}}}}}}")
    for i, t in enumerate(ts):
        color, dash = plot.style(t, uuids, keys)
        coords = [(sx(x), sy(y)) for x, y in t["points"]]
        out += [f"% {tex(t['name'])} {tex(t['key'])}", rf"{{\color[rgb]{{{_rgb(color)}}}%"]
        out += [s for a, b in _dashed(coords, dash) if (s := _segment(a, b))]
        if len(coords) <= plot.MARKERS_UP_TO:
            out += [rf"\put({_num(x)},{_num(y)}){{\circle*{{2.6}}}}" for x, y in coords]
        # the legend entry: the line's look, and the bundle's name linked to its page
        lx = 4 + (i % cols) * (W / cols)
        ly = legend_h - 6 - ROW * (i // cols)
        out += [s for a, b in _dashed([(lx, ly), (lx + 18, ly)], dash) if (s := _segment(a, b))]
        out.append(rf"\put({_num(lx + 9)},{_num(ly)}){{\circle*{{2.6}}}}")
        name = plot.label_of(t, len(keys) > 1)
        link = rf"\href{{{bundle_url(base_url, t['uuid'])}}}{{{tex(name)}}}"
        out.append(rf"\put({_num(lx + 22)},{_num(ly)}){{\makebox(0,0)[l]{{\scriptsize {link}}}}}")
        out.append("}%")  # in a picture a space (an end of line) between objects would shift the rest
    out += [r"\end{picture}", rf"\caption{{{caption_tex(spec)}}}", rf"\label{{fig:{spec.name}}}", r"\end{figure}"]
    return "\n".join(out) + "\n"


def _md(text):
    return re.sub(r"([\\`*_{}\[\]()#+!<>|])", r"\\\1", text)


def to_markdown(fig, base_url):
    spec = fig.spec
    links = ", ".join(f"[{_md(b.name)}]({bundle_url(base_url, b.uuid)})" for b in fig.bundles)
    return (f"**{_md(caption_text(spec))}**\n\n![{_md(caption_text(spec))}]({spec.name}.svg)\n\n"
            f"Points: {_md(', '.join(spec.y))} against {_md(spec.x)} from each bundle's {_md(spec.file)}: {links}.\n")


CSV_HEADER = ["label", "key", "x", "y", "bundle", "name"]


def to_csv(fig):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for s in fig.series:
        w.writerows([csv_text(s.label), csv_text(s.key), repr(x), repr(y), s.uuid, csv_text(s.name or "")]
                    for x, y in s.points)
    return buf.getvalue()


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def render(store, fig, base_url, source=""):
    """{file name: text} of a figure's export: .svg/.tex/.md/.csv and the provenance, which records
    their sha256 (nobody edits a picture by hand)."""
    spec = fig.spec
    files = {f"{spec.name}.svg": to_svg(fig), f"{spec.name}.tex": to_latex(fig, base_url),
             f"{spec.name}.md": to_markdown(fig, base_url), f"{spec.name}.csv": to_csv(fig)}
    labels = fig.labels()
    prov = {
        "figure": spec.name, "declaration": spec.model_dump(), "caption": caption_text(spec), "source": source,
        "base_url": base_url, "exported": time.time(), "points_sha256": figure_hash(fig.series),
        "series": [{"uuid": s.uuid, "name": s.name, "label": s.label, "key": s.key, "n_points": len(s.points),
                    "points_sha256": series_hash(s.points)} for s in fig.series],
        "bundles": [dict(bundle_provenance(store, b, None), label=labels[b.uuid]) for b in fig.bundles],
        "files": {name: sha256(text) for name, text in files.items()},
    }
    files[f"{spec.name}.provenance.json"] = json.dumps(prov, indent=1) + "\n"
    return files
