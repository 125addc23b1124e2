"""python -m benchmarks.last_logits: a forward that keeps the last position's logits only, with `logits_to_keep`
as an int (transformers slices the hidden states: a strided view) and as an index tensor (a contiguous copy;
what `Model.last_logits` passes locally), side by side, in float32 and bfloat16 (a timing, not a test).

torch 2.13's CPU matmul in bfloat16 runs the vocabulary projection of a strided [rows, 1, d] view orders of
magnitude slower than of a contiguous one; every trace that reads last-position logits (A/B scoring, vector
reads, the skills sweep's prefix passes) pays it once per batch.
"""

from __future__ import annotations

import argparse

import torch

from steer_trace.models import load_model
from steer_trace.read import encode
from steer_trace.score import model_inputs

from .harness import interleaved, load_line, median_ratio, medians_line

PROMPT = ("def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n\n"
          "The function above adds two numbers; a longer document for a realistic sequence length. ")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.last_logits")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256, help="Sequence length of each row.")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    for dtype in args.dtypes.split(","):
        model = load_model(args.model, device="cpu", dtype=dtype)
        enc = model_inputs(encode(model.tokenizer, [PROMPT * 40] * args.rows, args.tokens))
        forms = {"int": {"logits_to_keep": 1}, "index": {"logits_to_keep": torch.arange(-1, 0)}}

        def forward(form: str):
            with torch.no_grad(), model.lm.trace(enc, **forms[form]):
                logits = model.lm.output.logits[:, -1, :].save()
            return logits

        times, _, _ = interleaved({form: lambda f=form: forward(f) for form in forms}, args.repeats)
        gap = float((forward("int").float() - forward("index").float()).abs().max())
        print(f"{args.model} {dtype}: {args.rows} rows x {enc['input_ids'].shape[1]} tokens, last-position logits, "
              f"{args.repeats} rounds, torch threads {torch.get_num_threads()}")
        print(medians_line(times))
        print(f"  time int/index {median_ratio(times['int'], times['index']):.2f}  (largest logit difference "
              f"{gap:.2e})")
    print(load_line())


if __name__ == "__main__":
    main()
