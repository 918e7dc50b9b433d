"""Training curves: `% display graph /log_history.json y=...` over real fake-fine-tune bundles, several
runs overlaid, loss and metric series, live from the newest checkpoint while a run trains; rendered
as text, as SVG with axes and a legend, and in a static page."""

import re

from picture_helpers import fake_finetunes, release, start_gated_finetune, wait_for

from codalite.worksheets import interpret, parse, render
from codalite.worksheets.interpret import GraphBlock


def graphs(store, text):
    return [b for b in interpret(store, parse(text)).blocks if isinstance(b, GraphBlock)]


def test_several_runs_overlaid_loss_and_metric_series(store, tmp_path):
    a, b = fake_finetunes(store, tmp_path, lrs=(0.5, 1.0))
    (g,) = graphs(store, "% display graph /log_history.json y=loss,eval_loss\n% search name=ft-% .limit=10\n")
    series = {(store.get(t["uuid"]).name, t["key"]): t for t in g.trajectories}
    assert set(series) == {(n, k) for n in ("ft-0.5", "ft-1.0") for k in ("loss", "eval_loss")}
    loss = series[("ft-1.0", "loss")]["points"]
    assert [x for x, _ in loss] == list(range(1, 21)) and loss[0] == (1, 1.0)  # x = step, every logged step
    assert series[("ft-0.5", "eval_loss")]["points"] == [(s, round(2.2 / (1 + 0.5 * s), 4)) for s in (5, 10, 15, 20)]
    assert not any(t["live"] for t in g.trajectories) and g.xlabel == "step"
    # without y=: every curve key of the log (bookkeeping such as grad_norm, runtime, epoch left out)
    (auto,) = graphs(store, f"% display graph /log_history.json\n{{{a.uuid}}}\n")
    assert [t["key"] for t in auto.trajectories] == ["loss", "eval_loss", "eval_exact"]
    svg = str(render.graph_svg(g))
    assert svg.count("<polyline") == 4 and svg.count("class='legend'") == 4
    for name in ("ft-0.5 loss", "ft-0.5 eval_loss", "ft-1.0 loss", "ft-1.0 eval_loss"):
        assert f">{name}</text>" in svg
    assert re.search(r">step</text>", svg)  # the x axis is labelled
    text = render.to_text(interpret(store, parse(f"% display graph /log_history.json y=eval_exact\n{{{b.uuid}}}\n")))
    assert "[graph ft-1.0 eval_exact: 4 points, last 1 at 20" in text


def test_graph_in_the_static_page_escapes_names(store, tmp_path):
    (a,) = fake_finetunes(store, tmp_path, lrs=(0.5,))
    with store.tx():  # names pulled from a CodaLab server are not checked as ours are
        store.db.execute("UPDATE bundle SET name = ?, metadata = json_set(metadata, '$.name', ?) WHERE uuid = ?",
                         ("<b>ft</b>&x", "<b>ft</b>&x", a.uuid))
    page = render.to_html(store, interpret(store, parse(f"% display graph /log_history.json y=eval_exact\n{{{a.uuid}}}\n")),
                          "t")
    assert "<svg" in page and "&lt;b&gt;ft&lt;/b&gt;&amp;x" in page and "<b>ft" not in page


def test_missing_file_and_tsv_graphs_still_render(store, tmp_path):
    (a,) = fake_finetunes(store, tmp_path, lrs=(0.5,))
    (g,) = graphs(store, f"% display graph /nothing.json y=loss\n{{{a.uuid}}}\n")
    assert g.trajectories[0]["points"] == [] and "no points" in str(render.graph_svg(g))
    (tsv,) = graphs(store, f"% display graph /stdout\n{{{a.uuid}}}\n")  # CodaLab's TSV graph: x y columns
    assert tsv.trajectories[0]["points"] == []  # "checkpoint 5" is not two numbers


def test_live_curve_from_the_newest_checkpoint_while_the_run_trains(store, tmp_path):
    run = start_gated_finetune(store, tmp_path, every=5)
    try:
        text = f"% display graph /log_history.json y=loss,eval_exact\n{{{run.uuid}}}\n"
        (g,) = graphs(store, text)
        loss, exact = g.trajectories
        assert loss["live"] and loss["source"] == "checkpoints/checkpoint-5/trainer_state.json"
        assert [x for x, _ in loss["points"]] == [1, 2, 3, 4, 5] and exact["points"] == [(5, 0.5)]
        assert "(live)" in str(render.graph_svg(g)) and "(live)" in render.to_text(interpret(store, parse(text)))
        release(store, run)
        wait_for(lambda: store.get(run.uuid).state == "ready", 60, "the run to finish")
        (g,) = graphs(store, text)
        loss, exact = g.trajectories
        assert not loss["live"] and loss["source"] == "log_history.json" and len(loss["points"]) == 20
        assert [x for x, _ in exact["points"]] == [5, 10, 15, 20]
    finally:
        b = store.get(run.uuid)
        if not b.final:
            store.kill(b)
