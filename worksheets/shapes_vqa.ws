# Shapes VQA: does a small fine-tuned VLM answer from the image?

The study of `cl_recipes/shapes_vqa.yaml`: easy-vqa (64x64 shapes, questions of three types:
yes/no, shape, color), a balanced test split of 600 questions (200 per type). A tiny LLaVA (Llama LM,
patch-8 CLIP tower), three seeds: the tower first learns, image-only, to name the shape and color of
the training images; then it is frozen and the LM and projector are trained on one-word answers.
Headline: answer accuracy (the answer word taken from the generated answer) per question type, each
with its 95% Wilson interval over that bundle's test questions and n.
Compare it with the blind question prior (each question's most frequent training answer, no image),
scored the same way on the same questions, and with uniform chance (yes/no 0.5, shape 0.333,
color 0.125). The control row answers the same questions with the images permuted across them: if
shape and color fall to the prior there, the model's answers come from the image.

## Test answer accuracy (95% Wilson interval, n)

% schema scores
% add model /cell.json:model
% add seed /cell.json:seed %d
% add yes/no /per_example.jsonl "ci answer_acc qtype=yesno wilson"
% add shape /per_example.jsonl "ci answer_acc qtype=shape wilson"
% add color /per_example.jsonl "ci answer_acc qtype=color wilson"
% display table scores
% search name=score-% name=.sort .limit=100
% search name=score_shuffled-% name=.sort .limit=100

## The blind question prior on the same test questions (no image; 95% Wilson interval, n)

% schema blind
% add name
% add yes/no /blind_test.jsonl "ci answer_acc qtype=yesno wilson"
% add shape /blind_test.jsonl "ci answer_acc qtype=shape wilson"
% add color /blind_test.jsonl "ci answer_acc qtype=color wilson"
% display table blind
% search name=data type=run .limit=1

## Secondary metrics (test): exact match of the whole answer, token F1, NLI entailment

With one-word references exact match is close to answer accuracy, and NLI between two single words
says little (yes/no); they are kept to show that the pipeline computes them.

% schema secondary
% add model /cell.json:model
% add seed /cell.json:seed %d
% add n /scores.json:n %d
% add 'answer acc' /scores.json:answer_acc %.3f
% add exact /scores.json:exact %.3f
% add token_f1 /scores.json:token_f1 %.3f
% add nli_bidir /scores.json:nli_bidir %.3f
% add empty /scores.json:n_empty %d
% display table secondary
% search name=score-% name=.sort .limit=100

## Vision tower pretraining (image-only: name the shape and color of each training image)

Accuracy over the last 100 pretraining steps, on training images (no dev or test image is used).

% schema pretrain
% add name
% add steps /args.json:pretrain_vision_steps %d
% add 'train shape' /args.json:vision_pretrain/train_acc_last_100_steps/shape %.3f
% add 'train color' /args.json:vision_pretrain/train_acc_last_100_steps/color %.3f
% add time time duration
% display table pretrain
% search name=model-% name=.sort .limit=100

## Fine-tuning: the checkpoint chosen by exact match of generated dev answers (300 dev questions)

% schema finetune
% add name
% add steps /metrics.json:steps %d
% add best_step /metrics.json:best_step %d
% add 'dev exact' /metrics.json:eval_exact %.3f
% add 'dev shape' /metrics.json:eval_exact_shape %.3f
% add 'dev color' /metrics.json:eval_exact_color %.3f
% add eval_loss /metrics.json:eval_loss %.3f
% add time time duration
% add state
% display table finetune
% search name=finetune-% name=.sort .limit=100

## Training curves (every seed overlaid; live from the newest checkpoint while a fine-tune runs)

Training loss per logged step and dev loss per evaluation:

% display graph /log_history.json y=loss,eval_loss
% search name=finetune-% name=.sort .limit=100

Dev exact match of the generated answers per evaluation, overall and by question type:

% display graph /log_history.json y=eval_exact,eval_exact_shape,eval_exact_color
% search name=finetune-% name=.sort .limit=100

## What the models answer (test questions; `codalite serve` has the full page, filterable)

Shape questions, each with its image, the reference and every score bundle's answer (✓ right, ✗ wrong):

% display examples qtype=shape limit=12
% search name=score-% name=.sort .limit=100

Color questions a model got wrong:

% display examples qtype=color verdict=wrong limit=12
% search name=score-% name=.sort .limit=100

## The NLI scorer (MiniLM cross-encoder trained on the domain)

% schema nli
% add name
% add 'dev accuracy' /metrics.json:dev_accuracy %.3f
% add time time duration
% display table nli
% search name=nli type=run .limit=1
