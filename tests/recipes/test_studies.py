"""The project's two studies validate, plan and export (the paper-scale one cannot run here: no hub)."""

import os

from codalite import recipes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_llava_nli_plans_and_exports(cl):
    cl("init")
    path = os.path.join(ROOT, "cl_recipes", "llava_nli.yaml")
    plan = cl.out("recipe", "plan", path)
    assert plan.splitlines()[-1] == "48 missing"  # 3 once-only steps + 3 x 15 grid cells
    assert "finetune  lora_r=16 lr=0.0001 seed=3  missing" in plan
    script = cl.out("recipe", "export-cl", path)
    assert script.count("cl run ") == 48 and "cl upload" in script
    assert "--request-gpus 1 --request-memory 64g --request-time 1d --request-docker-image codalite/run-gpu:0.1" in script
    assert cl.out("search", ".count") == "0"  # planning changed nothing


def test_shapes_vqa_uses_each_variable_only_where_needed():
    r = recipes.load(os.path.join(ROOT, "cl_recipes", "shapes_vqa.yaml"))
    counts = {}
    for c in recipes.cells(r):
        counts[c.step] = counts.get(c.step, 0) + 1
    assert counts == {"data": 1, "model": 2, "nli": 1, "finetune": 4, "infer": 4, "score": 4,
                      "base_infer": 2, "base_score": 2}
    tiny = [c.command for c in recipes.cells(r) if c.name == "infer-vlmtiny-seed1"]
    assert tiny == ["python -m bundles.infer --data data --split test --max-new-tokens 12 --model ft/model"]
