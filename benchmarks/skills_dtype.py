"""python -m benchmarks.skills_dtype: skills scoring (top-1 next-token accuracy, unsteered and steered at the
middle layer) in float32 and bfloat16 side by side on the same documents (a timing, not a test).

On a CPU with AMX (`amx_bf16` in /proc/cpuinfo) oneDNN runs bfloat16 matmuls several times faster than
float32, so a sweep in bfloat16 costs less; this prints that ratio, measured interleaved, and how far the two
dtypes' accuracies are apart on the documents scored (the sweep's own check is the report's numerics section,
on the points both dtypes scored).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from studies.skills.corpora import load_corpus
from studies.skills import profiles
from studies.skills import run as skills
from steer_trace.models import load_model
from steer_trace.plan import Plan
from steer_trace.score import token_accuracy

from .harness import interleaved, load_line, median_ratio, medians_line, random_vector

DTYPES = ("float32", "bfloat16")


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    have = [f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()]
    return ", ".join(have) or "no bfloat16 instructions"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.skills_dtype")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data-dir", default=None, help="Shared data folder (default: the project's data/skills).")
    parser.add_argument("--docs", type=int, default=4, help="Evaluation documents per domain.")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    models = {dtype: load_model(args.model, device="cpu", dtype=dtype) for dtype in DTYPES}
    reference = models["float32"]
    corpus = load_corpus(data_dir=args.data_dir)
    profile = profiles.make_profile("default", eval_tokens=args.max_tokens)
    sweep_set = skills.eval_sets(corpus, profile, reference.tokenizer)["sweep"]
    chosen: dict[str, list[str]] = {}
    for domain, text in zip(sweep_set.domains, sweep_set.texts):
        if len(chosen.setdefault(domain, [])) < args.docs:
            chosen[domain].append(text)
    docs = [text for texts in chosen.values() for text in texts]
    layer = profiles.middle_layer(reference.n_layers)
    vector = random_vector(reference, [layer], seed=3, norm=4.0)
    plans = [Plan.none(), Plan.single(vector, layer, 1.0)]

    def score(dtype: str):
        return token_accuracy(models[dtype], docs, plans, args.batch_size, args.max_tokens)

    times, values, _ = interleaved({dtype: lambda d=dtype: score(d) for dtype in DTYPES}, args.repeats,
                                   counter=reference)  # a counter keeps each side's last value
    tokens = int(values["float32"][0][1].sum())
    print(f"skills scoring, {args.model}: {len(docs)} documents ({args.docs} per domain, <= {args.max_tokens} "
          f"tokens; {tokens:,} scored), unsteered + steered at layer {layer}, batch {args.batch_size}, "
          f"{args.repeats} rounds, torch threads {torch.get_num_threads()}; CPU: {cpu_flags()}")
    print(medians_line(times))
    print(f"  time float32/bfloat16 {median_ratio(times['float32'], times['bfloat16']):.2f}  "
          f"(tokens/s: " + ", ".join(f"{d} {2 * tokens / min(times[d]):.0f}" for d in DTYPES) + ")")
    for name, i in (("unsteered", 0), ("steered", 1)):
        acc = {d: float(values[d][i][0].sum()) / tokens for d in DTYPES}
        moved = int((values["float32"][i][0] != values["bfloat16"][i][0]).sum())
        print(f"  {name}: accuracy float32 {acc['float32']:.4f}, bfloat16 {acc['bfloat16']:.4f} "
              f"(difference {acc['bfloat16'] - acc['float32']:+.4f}; {moved} of {len(docs)} documents' counts differ)")
    print(load_line())


if __name__ == "__main__":
    main()
