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
    assert counts == {"data": 1, "model": 3, "nli": 1, "finetune": 3, "infer": 3, "score": 3,
                      "infer_shuffled": 3, "score_shuffled": 3}
    cmd = {c.name: c.command for c in recipes.cells(r)}
    assert cmd["infer-seed1"] == "python -m bundles.infer --data data --split test --max-new-tokens 6 --model ft/model"
    assert cmd["infer_shuffled-seed1"] == cmd["infer-seed1"].replace(" --model", " --shuffle-images 1 --model")
    assert "--answer-style word" in cmd["data"] and "--test-size 600" in cmd["data"]
    # the SmolLM2 arm is a profile of the same study (make demo-smollm2): one seed, LoRA, its own worksheet
    s = recipes.load(os.path.join(ROOT, "cl_recipes", "shapes_vqa.yaml"), "smollm2")
    cmd = {c.name: c.command for c in recipes.cells(s)}
    assert len(cmd) == 8 and "smollm2-vlm" in cmd["model-seed0"] and "--lora-r 8" in cmd["finetune-seed0"]
    assert "--full" not in cmd["finetune-seed0"] and s.worksheet == "shapes_vqa-smollm2"