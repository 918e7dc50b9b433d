"""The dependency graph around a bundle, up (ancestors) and down (descendants), as server-side SVG."""

import html

STATE_COLORS = {"ready": "#e3f4e1", "failed": "#f9dcdc", "killed": "#eee", "running": "#fff1cc",
                "staged": "#fff8e0", "created": "#f7f7f7"}
BOX_W, BOX_H, GAP_X, GAP_Y, MAX_PER_LEVEL = 170, 42, 20, 40, 8


def levels(store, uuid, depth=3):
    """{level: [uuid]}: negative levels are ancestors, 0 the bundle, positive its descendants."""
    store.get(uuid)  # BundleNotFound for a bundle not here
    up = store.lineage([uuid], depth)
    out, seen, edges = {0: [uuid]}, {uuid}, set()
    for lvl, level in enumerate(up):
        if lvl:
            found = [u for u, b in level.items() if b is not None]  # a missing parent gets no box
            seen.update(level)
            if found:
                out[-lvl] = found
        if lvl < depth:  # the edges into this level's bundles (the top level's parents are not shown)
            edges.update((d.parent_uuid, u) for u, b in level.items() if b is not None for d in b.dependencies)
    frontier, lvl = [uuid], 0
    while frontier and lvl < depth:  # down
        lvl += 1
        nxt = []
        for u in frontier:
            for c in store.children(u):
                edges.add((u, c))
                if c not in seen:
                    seen.add(c)
                    nxt.append(c)
        if nxt:
            out[lvl] = nxt
        frontier = nxt
    return out, edges


def svg(store, uuid, links, depth=3):
    lv, edges = levels(store, uuid, depth)
    pos, more = {}, {}
    width = 0
    ordered = sorted(lv)
    for row, lvl in enumerate(ordered):
        uuids = lv[lvl][:MAX_PER_LEVEL]
        more[lvl] = len(lv[lvl]) - len(uuids)
        for i, u in enumerate(uuids):
            pos[u] = (10 + i * (BOX_W + GAP_X), 10 + row * (BOX_H + GAP_Y))
        width = max(width, 10 + (len(uuids) + (1 if more[lvl] else 0)) * (BOX_W + GAP_X))
    height = 10 + len(ordered) * (BOX_H + GAP_Y)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' class='depgraph' width='{width}' height='{height}' "
             f"font-family='sans-serif' font-size='11'>"]
    for a, b in sorted(edges):
        if a in pos and b in pos:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            parts.append(f"<line x1='{x1 + BOX_W / 2}' y1='{y1 + BOX_H}' x2='{x2 + BOX_W / 2}' y2='{y2}' "
                         "stroke='#888' marker-end='url(#arrow)'/>")
    parts.insert(1, "<defs><marker id='arrow' markerWidth='8' markerHeight='8' refX='6' refY='3' orient='auto'>"
                    "<path d='M0,0 L6,3 L0,6 z' fill='#888'/></marker></defs>")
    for u, (x, y) in pos.items():
        b = store.get_or_none(u)
        name, state, kind = (b.name, b.state, b.bundle_type) if b else ("(missing)", "missing", "")
        fill = STATE_COLORS.get(state, "#fff")
        stroke = "stroke='#1a5fb4' stroke-width='2'" if u == uuid else "stroke='#999'"
        # Names, descriptions and even uuids and states may come from a pulled bundle: escape all of it.
        esc = html.escape
        parts.append(f"<a href='{esc(links.bundle(u))}'><g class='node' data-uuid='{esc(u)}'>"
                     f"<rect x='{x}' y='{y}' width='{BOX_W}' height='{BOX_H}' rx='5' fill='{fill}' {stroke}/>"
                     f"<text x='{x + 6}' y='{y + 16}' font-weight='bold'>{esc((name or '')[:24])}</text>"
                     f"<text x='{x + 6}' y='{y + 32}'>{esc(kind or '')} {esc(u[:10])} {esc(state or '')}</text>"
                     "</g></a>")
    for row, lvl in enumerate(ordered):
        if more[lvl]:
            x = 10 + MAX_PER_LEVEL * (BOX_W + GAP_X)
            parts.append(f"<text x='{x}' y='{10 + row * (BOX_H + GAP_Y) + 24}'>+{more[lvl]} more</text>")
    parts.append("</svg>")
    return "".join(parts)
