"""python -m benchmarks.packing: a question's texts packed into one row (its stem read once) vs one row each,
for content scoring (the question's options) and letter scoring (its rotations); a timing, not a test.

Each side runs `measure` with the same plans (unsteered + steered at the middle layer), interleaved. Prints the
median paired time ratio beside the token ratio (the work packing leaves: packed tokens / unpacked tokens, the
ideal on a machine whose cost is per token) and the largest score difference.
Default questions: the project's own myopia set (two options); `--dataset` any A/B, Yes/No or many-option file
(e.g. ../shared/data/anthropics_evals/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl).
"""

from __future__ import annotations


import torch

from steer_trace import content
from steer_trace.data import load_ab_file, prompt, rotations
from steer_trace.models import load_model
from steer_trace.packing import common_head, next_token_probs, pack
from steer_trace.score import answer_probs, answer_token_ids

from .harness import (interleaved, load_line, median_ratio, medians_line, middle_layer_plans,
                      question_bench_args)



def main(argv=None) -> None:
    args = question_bench_args("python -m benchmarks.packing", argv, dataset=True)

    model = load_model(args.model)
    items = load_ab_file(args.dataset)[: args.questions]
    plans = middle_layer_plans(model, args.plans)
    print(f"{args.model}: {len(items)} questions of {args.dataset.name}, {len(plans)} plans, batch {args.batch_size}, "
          f"{args.repeats} rounds, torch threads {torch.get_num_threads()}")
    content_scoring(model, items, plans, args)
    letter_scoring(model, items, plans, args)
    print(load_line())


def content_scoring(model, items, plans, args) -> None:
    heads = [content.content_prompt(i) for i in items]
    options = [content.texts(i) for i in items]
    prompts = [h for h, shown in zip(heads, options) for _ in shown]
    answers = [t for shown in options for t in shown]
    unpacked = [len(ids) for ids in model.tokenizer([p + a for p, a in zip(prompts, answers)])["input_ids"]]
    packed = [pack(model.tokenizer, h, shown).length for h, shown in zip(heads, options)]

    times, values, _ = interleaved(
        {"packed": lambda: content.packed_answer_logprobs(model, heads, options, plans, args.batch_size),
         "row per option": lambda: content.answer_logprobs(model, prompts, answers, plans, args.batch_size)},
        args.repeats, warmup=False, counter=model)
    delta = max(float((a - b).abs().max()) for a, b in zip(values["packed"], values["row per option"]))
    shown = [len(o) for o in options]
    print(f"content scoring: {min(shown)}-{max(shown)} options a question, {len(prompts)} in all")
    report(times, "row per option", packed, unpacked, delta, args.batch_size)


def letter_scoring(model, items, plans, args) -> None:
    asked = rotations(items)
    qids = [q for q, item in enumerate(items) for _ in range(len(item.options))]
    prompts = [prompt(item) for item in asked]
    ids = answer_token_ids(model.tokenizer, list(max(asked, key=lambda item: len(item.options)).options))
    unpacked = [len(t) for t in model.tokenizer(prompts)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: unpacked[i])  # as behaviour_eval orders them
    prompts, qids = [prompts[i] for i in order], [qids[i] for i in order]
    groups = [[p for p, q in zip(prompts, qids) if q == k] for k in range(len(items))]
    packed = [pack(model.tokenizer, common_head(g), [t[len(common_head(g)):] for t in g]).length for g in groups]
    times, values, _ = interleaved(
        {"packed": lambda: next_token_probs(model, prompts, qids, ids, plans, args.batch_size),
         "row per rotation": lambda: answer_probs(model, prompts, ids, plans, args.batch_size)},
        args.repeats, warmup=False, counter=model)
    delta = max(float((a[0] - b[0]).abs().max()) for a, b in zip(values["packed"], values["row per rotation"]))
    same = all(torch.equal(a[1], b[1]) for a, b in zip(values["packed"], values["row per rotation"]))
    print(f"letter scoring: every rotation of each question ({len(prompts)} prompts); greedy answers "
          f"{'equal' if same else 'DIFFER'}")
    report(times, "row per rotation", packed, unpacked, delta, args.batch_size)


def padded(lengths: list[int], batch_size: int) -> int:
    """Tokens run when rows of these lengths are batched in order of length, each batch padded to its longest."""
    ordered = sorted(lengths)
    return sum(max(ordered[i:i + batch_size]) * len(ordered[i:i + batch_size])
               for i in range(0, len(ordered), batch_size))


def report(times: dict, other: str, packed: list[int], unpacked: list[int], delta: float, batch_size: int) -> None:
    ratio = sum(packed) / sum(unpacked)
    work = padded(packed, batch_size) / padded(unpacked, batch_size)
    print(f"  tokens per plan: packed {sum(packed)}, {other} {sum(unpacked)} (ratio {ratio:.2f}; "
          f"with each batch padded to its longest row {work:.2f})")
    print(medians_line(times))
    print(f"  time packed / {other} {median_ratio(times['packed'], times[other]):.2f}  (padded token ratio "
          f"{work:.2f}); max |probability or score difference| {delta:.1e}")


if __name__ == "__main__":
    main()
