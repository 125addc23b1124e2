"""python -m benchmarks.content_packing: content scoring with a question's options packed into one row
(its stem read once) vs one row per option (a timing, not a test).

Both run `measure` with the same plans (unsteered + steered at the middle layer), interleaved. Prints the
median paired time ratio beside the token ratio (the work packing leaves: packed tokens / unpacked
tokens, the ideal on a machine whose cost is per token) and the largest score difference.
Default questions: the project's own myopia set (two options); `--dataset` any A/B or many-option file
(e.g. ../shared/data/anthropics_evals/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from steer_trace import content
from steer_trace.data import load_ab_file
from steer_trace.models import load_model
from steer_trace.packing import pack
from steer_trace.plan import Plan

from .harness import interleaved, load_line, median_ratio, medians_line, random_vector

OWN_QUESTIONS = Path(__file__).resolve().parent.parent / "data" / "behaviours" / "myopic.jsonl"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.content_packing")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dataset", type=Path, default=OWN_QUESTIONS)
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--plans", type=int, default=4, help="Unsteered + this many - 1 steered plans.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    model = load_model(args.model)
    items = load_ab_file(args.dataset)[: args.questions]
    heads = [content.content_prompt(i) for i in items]
    options = [content.texts(i) for i in items]
    prompts = [h for h, shown in zip(heads, options) for _ in shown]
    answers = [t for shown in options for t in shown]
    layer = model.n_layers // 2
    plans = [Plan.none()] + [Plan.single(random_vector(model, [layer], seed=k, norm=8.0), layer, 1.0)
                             for k in range(args.plans - 1)]
    unpacked_tokens = sum(len(ids) for ids in model.tokenizer([p + a for p, a in zip(prompts, answers)])["input_ids"])
    packed_tokens = sum(pack(model.tokenizer, h, shown).length for h, shown in zip(heads, options))

    times, values, _ = interleaved(
        {"packed": lambda: content.packed_answer_logprobs(model, heads, options, plans, args.batch_size),
         "row per option": lambda: content.answer_logprobs(model, prompts, answers, plans, args.batch_size)},
        args.repeats, warmup=False, counter=model)
    delta = max(float((a - b).abs().max()) for a, b in zip(values["packed"], values["row per option"]))
    shown = [len(o) for o in options]
    print(f"content scoring, {args.model}: {len(items)} questions of {args.dataset.name} ({min(shown)}-{max(shown)} "
          f"options, {len(prompts)} options in all), {len(plans)} plans, batch {args.batch_size}, "
          f"{args.repeats} rounds, torch threads {torch.get_num_threads()}")
    print(f"  tokens per plan: packed {packed_tokens}, row per option {unpacked_tokens} "
          f"(ratio {packed_tokens / unpacked_tokens:.2f})")
    print(medians_line(times))
    ratio = median_ratio(times["packed"], times["row per option"])
    print(f"  time packed / row per option {ratio:.2f}  (token ratio {packed_tokens / unpacked_tokens:.2f}); "
          f"max |score difference| {delta:.1e}")
    print(load_line())


if __name__ == "__main__":
    main()
