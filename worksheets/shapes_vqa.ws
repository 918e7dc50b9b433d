# Shapes VQA: do small fine-tuned VLMs answer from the image?

The study of `cl_recipes/shapes_vqa.yaml`: easy-vqa (64x64 shapes); a SmolLM2-135M-based LLaVA-style
VLM tuned with LoRA and a tiny LLaVA (patch-8 vision tower) trained in full, two seeds each;
checkpoints selected by an NLI score of the *generated* dev answers during training; then scored on
the test split by exact match and NLI, per question type.
The blind baseline answers each question with its most frequent training answer without looking at
the image: yes/no questions are mostly answerable from the text alone, so only shape and color
accuracy above the blind baseline show that a model uses the image.

## Test scores

% schema scores
% add model /cell.json:model
% add seed /cell.json:seed %d
% add exact /scores.json:exact %.3f
% add yes/no /scores.json:exact_yesno %.3f
% add shape /scores.json:exact_shape %.3f
% add color /scores.json:exact_color %.3f
% add nli_bidir /scores.json:nli_bidir %.3f
% add 'blind shape' /scores.json:baseline/test/exact_shape %.3f
% add 'blind color' /scores.json:baseline/test/exact_color %.3f
% add state
% display table scores
% search name=base_score-% name=.sort
% search name=score-% name=.sort .limit=100

## Fine-tuning: the checkpoint chosen by NLI of generated dev answers

% schema finetune
% add name
% add best_step /metrics.json:best_step %d
% add 'dev nli_bidir' /metrics.json:eval_nli_bidir %.3f
% add 'dev exact' /metrics.json:eval_exact %.3f
% add 'dev color' /metrics.json:eval_exact_color %.3f
% add eval_loss /metrics.json:eval_loss %.3f
% add time time duration
% add state
% display table finetune
% search name=finetune-% name=.sort .limit=100

## The NLI scorer (MiniLM cross-encoder trained on the domain)

% schema nli
% add name
% add 'dev accuracy' /metrics.json:dev_accuracy %.3f
% add time time duration
% display table nli
% search name=nli type=run .limit=1
