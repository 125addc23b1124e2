"""python -m benchmarks.content_logits: content scoring with logits at the answer positions only vs at
every position (a timing, not a test).

Content scoring reads log p(option text | question), so it needs the vocabulary projection only where a
position predicts an answer token: the last (longest answer + 1) positions (`logits_to_keep`). This runs
`content.answer_logprobs` both ways on the project's own myopia questions (every option of each), the same
plans (unsteered + steered at the middle layer), interleaved; prints the median paired time ratio, the
share of the positions whose logits are kept, and the largest score difference between the two.
"""

from __future__ import annotations


import torch

from steer_trace import content
from steer_trace.data import load_ab_file
from steer_trace.models import load_model
from steer_trace.score import Readout, measure

from .harness import (OWN_QUESTIONS, interleaved, load_line, median_ratio, medians_line, middle_layer_plans,
                      question_bench_args)



def main(argv=None) -> None:
    args = question_bench_args("python -m benchmarks.content_logits", argv, dataset=False)

    model = load_model(args.model)
    items = load_ab_file(OWN_QUESTIONS)[: args.questions]
    prompts = [content.content_prompt(i) for i in items for _ in content.texts(i)]
    answers = [t for i in items for t in content.texts(i)]
    plans = middle_layer_plans(model, args.plans)
    lengths = torch.tensor(content.answer_lengths(model.tokenizer, prompts, answers))
    widths = torch.tensor([len(ids) for ids in model.tokenizer([p + a for p, a in zip(prompts, answers)])["input_ids"]])

    def every_position():
        readout = Readout(content._answer_mean_logprob, per_text=lengths)
        texts = [p + a for p, a in zip(prompts, answers)]
        return [out[0] for out in measure(model, texts, plans, readout, args.batch_size)]

    times, values, _ = interleaved(
        {"answer positions": lambda: content.answer_logprobs(model, prompts, answers, plans, args.batch_size),
         "every position": every_position}, args.repeats, warmup=False, counter=model)
    delta = max(float((a - b).abs().max()) for a, b in zip(values["answer positions"], values["every position"]))
    kept = (int(lengths.max()) + 1) / widths.float().mean()
    print(f"content scoring, {args.model}: {len(items)} questions, {len(prompts)} (question, option) texts of "
          f"{widths.float().mean():.0f} tokens on average (answers {int(lengths.min())}-{int(lengths.max())}), "
          f"{len(plans)} plans, batch {args.batch_size}, {args.repeats} rounds, "
          f"torch threads {torch.get_num_threads()}")
    print(medians_line(times))
    ratio = median_ratio(times["answer positions"], times["every position"])
    print(f"  time answer positions / every position {ratio:.2f}"
          f"  (logits kept at {kept:.2f} of the mean text's positions); max |score difference| {delta:.1e}")
    print(load_line())


if __name__ == "__main__":
    main()
