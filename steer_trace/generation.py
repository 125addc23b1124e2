"""Steered text generation with sampling options, seeded per (prompt, sample) so runs pair.

Pattern: `generate(model, questions, plan, GenerationOptions(...))` returns one `Sample` per
(question, sample index). Every row of a batch draws its own uniform numbers, one per generated
step, from a `torch.Generator` seeded by (options.seed, the prompt's text, the sample index):

- the token is drawn *inside* the trace by the inverse of the cumulative distribution: the
  next-token probabilities (temperature, then top-p) sorted from the most likely, and the first
  token whose cumulative probability passes u x (kept mass). The trace then forces that token
  (its logit 0, every other -1e4), so transformers' greedy step takes it; only one number per
  row and step travels to an NDIF server, not a vocabulary's worth of noise;
- so a row's tokens depend on its own logits and its own numbers only: batched equals unbatched
  (up to float rounding of padded batches, which can flip a token only where u falls within
  ~1e-6 of a boundary), a seeded run repeats exactly, and the steered and unsteered samples of
  one prompt use the same numbers (common random numbers): at coef 0 they are identical, and
  a small steering changes only the tokens it pushes across a boundary;
- temperature 0 is greedy (argmax; no numbers drawn).

Gotchas: the model's own generation_config defaults (repetition penalty, top-k, a default
temperature) are NOT applied: only the options given. Generation always runs max_new_tokens
steps (nnsight's step loop needs a fixed count); the end-of-sequence token and stop strings
cut the text afterwards (`stop_at_eos=False` forbids the end token instead, as the old greedy
`steered_generate` did). The chat template's default system prompt (smollm2, qwen) applies
unless `system` is given.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field

import nnsight
import torch

from .batching import chunks, encode
from .errors import UserError
from .models import Model
from .plan import Plan, apply_plan
from .row_plans import row_deltas

FORCED = 1e4  # a forced token's logit lead over every other token


@dataclass(frozen=True)
class GenerationOptions:
    """How text is generated; the defaults are greedy, 40 tokens, chat template on."""

    max_new_tokens: int = 40
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0  # nucleus sampling: keep the most likely tokens up to this mass
    seed: int = 0
    samples: int = 1  # per prompt
    stop: tuple[str, ...] = ()  # the text ends before the first of these
    stop_at_eos: bool = True  # False: the end-of-sequence token is never chosen
    chat: bool = True  # wrap each prompt in the tokenizer's chat template
    system: str | None = None  # system prompt (chat only); None: the template's default
    batch_size: int = 16  # rows (prompt x sample) per trace

    def __post_init__(self):
        if int(self.max_new_tokens) < 1:
            raise UserError(f"max_new_tokens must be at least 1 (got {self.max_new_tokens})")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise UserError(f"temperature must be a finite number >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1] (got {self.top_p})")
        if int(self.samples) < 1:
            raise UserError(f"samples must be at least 1 (got {self.samples})")
        if int(self.batch_size) < 1:
            raise UserError(f"batch_size must be at least 1 (got {self.batch_size})")
        if self.system is not None and not self.chat:
            raise UserError("a system prompt needs the chat template (chat=True / --chat)")
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))
        if self.greedy and self.samples > 1:
            raise UserError(f"{self.samples} samples per prompt at temperature 0 would be {self.samples} copies of "
                            "one greedy text: give a temperature > 0")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def key(self) -> dict:
        """What a cached result of this generation depends on (batch_size does not change the text)."""
        return {k: v for k, v in asdict(self).items() if k != "batch_size"}


@dataclass(frozen=True)
class Sample:
    question: int  # index of the prompt in the call
    sample: int  # index of the sample of that prompt
    seed: int  # the row's generator seed (equal for the steered and unsteered sample of a prompt)
    prompt: str  # the text the model continued (after the chat template)
    text: str  # the continuation, cut at the end token or a stop string
    tokens: tuple[int, ...] = field(repr=False, default=())  # the continuation's tokens (before a stop-string cut)
    stopped: str = "length"  # "eos", "stop" or "length"


def format_prompt(tokenizer, question: str, chat: bool = True, system: str | None = None) -> str:
    """The text the model continues: the chat template around `question` (with `system`), or `question` as is."""
    if not chat:
        return question
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("this model's tokenizer has no chat template: generate without it (--no-chat / chat=False)")
    messages = ([{"role": "system", "content": system}] if system is not None else []) + \
        [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def row_seed(seed: int, prompt: str, sample: int) -> int:
    """The generator seed of one (prompt, sample): from the prompt's text, not its place in a call,
    so a prompt draws the same numbers in any batch, order or subset."""
    digest = hashlib.sha256(f"{int(seed)}\0{int(sample)}\0{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def uniforms(seed: int, n: int) -> torch.Tensor:
    """n numbers in [0, 1) from a generator seeded with `seed` (float64 draws, as float32)."""
    return torch.rand(n, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64).float()


def end_tokens(model: Model) -> list[int]:
    """The token ids that end a text: the tokenizer's end token and the generation config's."""
    ids = set()
    eos = getattr(model.tokenizer, "eos_token_id", None)
    if eos is not None:
        ids.add(int(eos))
    configured = getattr(getattr(model.lm, "generation_config", None), "eos_token_id", None)
    for i in configured if isinstance(configured, (list, tuple)) else [configured]:
        if i is not None:
            ids.add(int(i))
    return sorted(ids)


def choose(logits, u, temperature: float, top_p: float, banned: list[int]):
    """Inside a trace: the next token of each row ([B, 1]) from the last position's logits ([B, V]).
    Greedy at temperature 0; else the inverse-CDF draw at u ([B, 1]) over the tokens sorted by
    probability, after temperature and top-p. `banned` tokens are never chosen."""
    scores = logits.float()
    if banned:
        scores[:, banned] = -math.inf
    if temperature == 0:
        return scores.argmax(dim=-1, keepdim=True)
    probs = torch.softmax(scores / temperature, dim=-1)
    ordered, index = torch.sort(probs, dim=-1, descending=True, stable=True)
    if top_p < 1:
        ordered = ordered * ((ordered.cumsum(dim=-1) - ordered) < top_p)  # the top token is always kept
    cdf = ordered.cumsum(dim=-1)
    rank = (cdf < u * cdf[:, -1:]).sum(dim=-1, keepdim=True).clamp(max=probs.shape[-1] - 1)
    return index.gather(-1, rank)


def _steer_rows(model: Model, plans: list[Plan], attention_mask, step: int, held: dict) -> None:
    """Inside a generation step: each row's plan. One plan: `apply_plan` (a gated plan's prompt decisions kept
    in `held`, one dict for all steps); pure-add plans of several rows: each row's own summed delta per layer
    (row_plans.row_deltas), one forward for all of them."""
    if len({id(p) for p in plans}) == 1:
        if not plans[0].is_empty:
            apply_plan(model, plans[0], attention_mask, step, held)
        return
    layers = model.layers()
    for layer, delta in row_deltas(plans, list(enumerate(plans))):
        model.residual(layers[layer])[:] += model.cast(delta)[:, None, :]


def _generate_rows(model: Model, prompts: list[str], seeds: list[int], plans: list[Plan],
                   options: GenerationOptions) -> list[list[int]]:
    """One trace: each row's max_new_tokens chosen tokens, row r steered by plans[r]."""
    n = int(options.max_new_tokens)
    encoded = encode(model.tokenizer, prompts)
    model.check_context(encoded, new_tokens=n)  # past the context a model writes degenerate text, no error
    enc = model.on_device(encoded)
    banned = [] if options.stop_at_eos else end_tokens(model)
    draws = torch.stack([uniforms(s, n) for s in seeds])  # [B, n]
    if not model.remote:
        draws = draws.to(model.device)
    held: dict = {}  # a gated plan's decisions on the prompt, for every later step
    with torch.no_grad():
        # the last position's logits as an index, not transformers' int 1 (a strided slice, 5.6x slower in
        # bfloat16 on a CPU: benchmarks/generate_logits.py); the tokens are the same
        with model.lm.generate(enc, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                               **model.last_logits(1), **model.trace_kwargs()) as tracer:
            chosen = nnsight.save([])  # filled where the trace runs (on an NDIF server: there), then sent back
            for step in tracer.iter[:n]:
                _steer_rows(model, plans, enc["attention_mask"], step, held)
                logits = model.lm.output.logits
                token = choose(logits[:, -1, :], draws[:, step : step + 1], options.temperature, options.top_p,
                               banned)
                logits[:, -1, :] = torch.full_like(logits[:, -1, :], -FORCED).scatter(-1, token, 0.0)
                chosen.append(token.save())
    return torch.cat([torch.as_tensor(t).cpu() for t in chosen], dim=1).tolist()


def _finish(model: Model, tokens: list[int], ends: set[int], stop: tuple[str, ...]) -> tuple[str, tuple, str]:
    """Decode one row: cut at the first end token, then before the first stop string."""
    stopped = "length"
    for i, t in enumerate(tokens):
        if t in ends:
            tokens, stopped = tokens[:i], "eos"
            break
    text = model.tokenizer.decode(tokens, skip_special_tokens=True)
    cuts = [text.find(s) for s in stop if s in text]
    if cuts:
        text, stopped = text[: min(cuts)], "stop"
    return text, tuple(tokens), stopped


def generate(model: Model, questions: list[str], plan: Plan | None = None,
             options: GenerationOptions | None = None, progress=None) -> list[Sample]:
    """Samples of each question's continuation under `plan` (None: unsteered), in question order,
    `options.samples` per question. A question is formatted by `format_prompt` (chat template on
    or off). Rows are batched `options.batch_size` at a time; the result does not depend on it."""
    return generate_jobs(model, [(plan, questions)], options, progress)[0]


def generate_jobs(model: Model, jobs: list[tuple[Plan | None, list[str]]], options: GenerationOptions | None = None,
                  progress=None) -> list[list[Sample]]:
    """`generate` for several (plan, questions) jobs at once: when every plan is a pure add, rows of different
    jobs share forward passes (each row carries its own delta), so K plans over N questions take
    ceil(K N samples / batch_size) traces. One list of samples per job; each job's as `generate` gives it."""
    options = options or GenerationOptions()
    plans = [(plan or Plan.none()).check(model) for plan, _ in jobs]
    questions = [list(qs) for _, qs in jobs]
    if any(not q for qs in questions for q in qs) and not options.chat:
        raise UserError("a prompt is empty: give some text (without the chat template there is nothing to continue)")
    prompts = [[format_prompt(model.tokenizer, q, options.chat, options.system) for q in qs] for qs in questions]
    rows = [(j, qi, k, row_seed(options.seed, p, k)) for j, ps in enumerate(prompts) for qi, p in enumerate(ps)
            for k in range(options.samples)]
    mixed = all(p.pure_add for p in plans)
    groups = [rows] if mixed else [[r for r in rows if r[0] == j] for j in range(len(jobs))]
    ends = set(end_tokens(model)) if options.stop_at_eos else set()
    out: list[list[Sample]] = [[] for _ in jobs]
    for group in groups:
        for batch in chunks(group, options.batch_size):
            tokens = _generate_rows(model, [prompts[j][qi] for j, qi, _, _ in batch], [s for *_, s in batch],
                                    [plans[j] for j, *_ in batch], options)
            for (j, qi, k, s), row in zip(batch, tokens):
                text, kept, stopped = _finish(model, row, ends, options.stop)
                out[j].append(Sample(qi, k, s, prompts[j][qi], text, kept, stopped))
            if progress:
                progress(len(batch))
    return out


def steered_generate(model: Model, prompts: list[str], plan: Plan, max_new_tokens: int = 40,
                     **options) -> list[str]:
    """Continuations of `prompts` (as given: no chat template unless chat=True) with the plan applied
    to the prompt and every new token. Without options: greedy, max_new_tokens tokens, the end token
    never chosen (as before). Any GenerationOptions field may be passed (temperature, top_p, seed,
    samples, stop, stop_at_eos, chat, system, batch_size): with samples=K the list holds K texts
    per prompt, prompt by prompt."""
    fields = {"chat": False, "stop_at_eos": False, "batch_size": max(1, len(prompts)), **options}
    unknown = set(fields) - set(GenerationOptions.__dataclass_fields__)
    if unknown:
        raise UserError(f"unknown generation option(s): {', '.join(sorted(unknown))}")
    opts = GenerationOptions(max_new_tokens=int(max_new_tokens), **fields)
    return [s.text for s in generate(model, list(prompts), plan, opts)]

