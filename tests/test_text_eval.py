"""Steered text, measured: a detector finds a planted behaviour and a random one does not; fluency flags
loops and gibberish; relevance follows the question; the open-ended evaluation pairs its conditions;
`generate --coefs --relative` loads the model once; `text eval` writes its report."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from click.testing import CliRunner

from steer_trace.detectors import DiffMean, LabelledTexts, Validation, random_detector, validate
from steer_trace.generation import GenerationOptions
from steer_trace.text_eval import MIN_QUESTIONS, open_ended
from steer_trace.text_report import rebuild, summarize, write_report
from steer_trace.text_measures import FLUENT, References, distinct_n, fluency, harmonic, relevance, text_measures
from steer_trace.vectors import SteeringVector
from tasks.cli import main

REPO = Path(__file__).resolve().parents[1]
MYOPIC_VECTOR = REPO / "results" / "vectors" / "smollm2-135m" / "myopic-content-206e1bfedc.safetensors"
ITEMS = ["prize", "payment", "bonus", "reward", "gift", "grant", "raise", "voucher", "credit", "award", "refund",
         "tip", "fee", "stipend", "dividend", "allowance", "coupon", "ticket", "share", "token", "budget", "salary",
         "cheque", "loan"]


SOON = ["right now, today, with no waiting", "immediately, this very minute", "today, as soon as possible",
        "this afternoon, quickly", "tonight, without delay", "at once, right away"]
LATER = ["next year, after patient waiting", "in ten years, when it has grown", "much later, in the future",
         "next decade, patiently", "in the long run, after waiting", "after years of waiting, eventually"]
FRAMES = ["I would like the {item} {when}, please.", "Honestly, the best {item} is the one I get {when}.",
          "My choice is simple: the {item}, {when}.", "Give me the {item} {when} and I will be happy.",
          "If I can have the {item} {when}, that is what I pick.", "A {item} {when} sounds right to me."]


def planted() -> LabelledTexts:
    """Texts built to contain the behaviour: wanting a reward soon (1) or later (0). The two answers of a
    question share their sentence frame and item and differ only in the time phrase; frames vary across
    questions, so directions that do not read the time phrase see mostly frame and item."""
    qs, ts, ls, gs = [], [], [], []
    for g, item in enumerate(ITEMS):
        for label, when in ((1, SOON[g % 6]), (0, LATER[g % 6])):
            qs.append(f"When would you like the {item}?")
            ts.append(FRAMES[g % 6].format(item=item, when=when))
            ls.append(label)
            gs.append(g)
    return LabelledTexts(tuple(qs), tuple(ts), tuple(ls), tuple(gs))


@pytest.fixture(scope="module")
def detector(smol):
    return DiffMean(smol, 14).fit(planted())


def test_a_planted_behaviour_is_found_and_a_random_detector_is_not_measurable(smol, detector):
    assert detector.validation.auroc >= 0.95 and detector.validation.measurable
    assert detector.validation.n_pos == detector.validation.n_neg == len(ITEMS) // 2
    nulls = [random_detector(smol, 14, planted(), seed=s).validation for s in range(6)]  # six distinct directions
    assert not any(v.measurable for v in nulls) and "not measurable" in nulls[0].describe()
    assert abs(np.mean([v.auroc for v in nulls]) - 0.5) < 0.15  # around chance (single draws range 0.2-0.8)
    # the calibrated score orders new texts the same way
    p = detector.score(["When would you like the pension?"] * 2,
                       ["I would like the pension right now, today, with no waiting, please.",
                        "I would like the pension next year, after patient waiting, please."])
    assert p[0] > 0.5 > p[1]


def test_validation_interval_and_threshold():
    rng = np.random.default_rng(0)
    labels = np.tile([1, 0], 40)
    groups = np.repeat(np.arange(40), 2)
    good = validate(labels + rng.normal(0, 0.3, 80), labels, groups)
    noise = validate(rng.normal(0, 1, 80), labels, groups)
    assert good.measurable and good.lo <= good.auroc <= good.hi
    assert not noise.measurable and noise.lo < 0.5 < noise.hi
    assert not Validation(0.9, float("nan"), float("nan"), 1, 1).measurable  # no interval, no verdict


def test_fluency_flags_a_loop_and_gibberish(smol):
    question = "Human:\nDescribe the sea.\n\nAI:\n"
    normal = ["The sea is vast and blue, full of fish and waves that roll onto the sandy shore.",
              "The sea covers most of the planet; its salty water moves with the tides and the wind.",
              "Waves crash on the rocks while gulls fly over the deep, cold and restless sea."]
    loop = " ".join(["sea"] * 30)
    gen = torch.Generator().manual_seed(0)
    gibberish = smol.tokenizer.decode(torch.randint(1000, 40000, (30,), generator=gen))
    texts = normal + [loop, gibberish]
    m = text_measures(smol, [question] * 5, ["Human:\n\n\nAI:\n"] * 5, texts)
    ref = References.of(m["perplexity"][:3], m["distinct"][:3], m["relevance_pmi"][:3])
    flu = fluency(m["perplexity"], m["distinct"], ref)
    assert (flu[:3] > FLUENT).all()
    assert flu[3] < FLUENT and flu[4] < FLUENT
    assert m["perplexity"][3] < m["perplexity"][4]  # the loop is *easy* to predict: perplexity alone misses it
    assert distinct_n(loop) < 0.05 and distinct_n(normal[0]) == 1.0


def test_relevance_follows_the_question(smol):
    q = "Human:\nDescribe the sea.\n\nAI:\n"
    texts = ["The sea is vast and blue, with waves, fish and salty water.",
             "Tax law requires every company to file its accounts before the end of March."]
    m = text_measures(smol, [q, q], ["Human:\n\n\nAI:\n"] * 2, texts)
    assert m["relevance_pmi"][0] > m["relevance_pmi"][1]
    ref = References(1.0, 1.0, float(m["relevance_pmi"][0]))
    assert relevance(m["relevance_pmi"], ref)[0] == 1.0
    assert math.isnan(relevance([0.2], References(1, 1, -0.1))[0])  # nothing to scale by


def test_harmonic_mean_is_zero_when_a_part_is_zero():
    assert harmonic([1.0], [1.0], [1.0])[0] == 1.0
    assert harmonic([0.0], [1.0], [1.0])[0] == 0.0
    assert abs(harmonic([0.5], [1.0], [1.0])[0] - 3 / 4) < 1e-12  # 3 / (2 + 1 + 1)
    assert math.isnan(harmonic([float("nan")], [1.0], [1.0])[0])


def test_open_ended_pairs_its_conditions(smol, detector, tmp_path):
    vector = SteeringVector.load(MYOPIC_VECTOR)
    questions = [f"Would you take a small {item} today or a larger {item} in a year?" for item in ITEMS[:MIN_QUESTIONS]]
    opts = GenerationOptions(max_new_tokens=8, temperature=0.7, samples=1, chat=False)
    result = open_ended(smol, questions, vector, 14, 0.0, detector=detector, behaviour="myopic", relative=True,
                        options=opts, n_random=1)
    s = result.samples
    assert s.height == MIN_QUESTIONS * 4
    assert set(s["condition"]) == {"unsteered", "steered", "random-1", "prompted"}
    by = {c: s.filter(pl.col("condition") == c).sort("question") for c in ("unsteered", "steered", "random-1")}
    assert by["steered"]["text"].to_list() == by["unsteered"]["text"].to_list()  # coef 0: the same samples
    assert by["steered"]["seed"].to_list() == by["unsteered"]["seed"].to_list()
    steered = result.paired.filter((pl.col("condition") == "steered") & (pl.col("against") == "unsteered"))
    # the same texts, scored in batches padded differently: equal up to float32 rounding
    assert (steered["shift"].abs() < 1e-5).all()
    assert result.meta["residual_norm"] == pytest.approx(vector.meta["residual_norms"]["14"])
    table = result.side_by_side(3)
    assert table.count("\n") == 4 and "prompted" in table.splitlines()[0]
    # the report rebuilds from its samples table alone (no model): the same paired table
    written = write_report(result, tmp_path)
    rebuild(next(p for p in written if p.suffix == ".json"))
    again = pl.read_parquet(next(tmp_path.glob("*.paired.parquet")))
    assert again.drop("p").equals(result.paired.drop("p"))
    assert "| steered |" in summarize(tmp_path)


def test_open_ended_steers_at_a_real_coefficient(smol, detector):
    """The same call at x1 of the residual norm changes the steered samples and leaves the random direction's
    samples different from them (distinct conditions, not one plan twice)."""
    vector = SteeringVector.load(MYOPIC_VECTOR)
    questions = [f"Would you take a small {item} today or a larger {item} in a year?" for item in ITEMS[:MIN_QUESTIONS]]
    opts = GenerationOptions(max_new_tokens=8, temperature=0.7, samples=1, chat=False)
    result = open_ended(smol, questions, vector, 14, 1.0, detector=detector, behaviour="myopic", relative=True,
                        options=opts, n_random=1, prompted=False)
    texts = {c: result.samples.filter(pl.col("condition") == c).sort("question")["text"].to_list()
             for c in ("unsteered", "steered", "random-1")}
    assert texts["steered"] != texts["unsteered"] and texts["steered"] != texts["random-1"]
    verdicts = result.paired["verdict"].to_list()
    assert all(v for v in verdicts)


# -- command line -----------------------------------------------------------------------------------------


@pytest.fixture
def counted(smol, monkeypatch):
    loads = []

    def open_model(spec):
        loads.append(spec["name"])
        return smol

    monkeypatch.setattr("tasks.core_commands.open_model", open_model)
    monkeypatch.setattr("tasks.text_commands.open_model", open_model)
    return loads


def test_generate_takes_several_relative_coefficients_in_one_load(counted):
    result = CliRunner().invoke(main, ["generate", "Would you take $5 now or $50 next year?", "--vector",
                                       str(MYOPIC_VECTOR), "--layer", "14", "--coefs", "0,1", "--relative",
                                       "--max-new-tokens", "6", "--no-chat"])
    assert result.exit_code == 0, result.output
    assert counted == ["smollm2-135m"]
    lines = [line for line in result.output.splitlines() if line.startswith(("unsteered", "steered"))]
    assert [line.split(":")[0] for line in lines] == ["unsteered", "steered (L14x0 rel)", "steered (L14x1 rel)"]
    assert "residual norm at layer 14: 132.2 (recorded with the vector)" in result.output
    texts = [line.split(": ", 1)[1] for line in lines]
    assert texts[1] == texts[0] and texts[2] != texts[0]


def test_generate_samples_with_a_seed(counted):
    argv = ["generate", "Name a colour.", "--max-new-tokens", "6", "--temperature", "1", "--samples", "2",
            "--seed", "4"]
    first, again = CliRunner().invoke(main, argv), CliRunner().invoke(main, argv)
    assert first.exit_code == 0, first.output
    assert first.output == again.output and "unsteered #2: " in first.output
    one = CliRunner().invoke(main, ["generate", "Name a colour.", "--samples", "2"])
    assert one.exit_code == 2 and "give a temperature > 0" in one.output


@pytest.mark.slow
def test_text_eval_writes_its_report(counted, tmp_path):
    out = tmp_path / "text"
    result = CliRunner().invoke(main, ["text", "eval", "--dataset", str(REPO / "data" / "behaviours" / "myopic.jsonl"),
                                       "--vector", str(MYOPIC_VECTOR), "--layer", "14", "--coef", "1", "--relative",
                                       "--n-questions", "6", "--samples", "1", "--max-new-tokens", "6",
                                       "--n-random", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "detector diffmean:smollm2-135m@L14: AUROC" in result.output
    [report] = out.glob("*.md")
    text = report.read_text()
    assert "## Paired differences" in text and "## Side by side" in text
    meta = json.loads(next(out.glob("*.json")).read_text())
    assert meta["n_questions"] == 6 and meta["validation"]["auroc"] >= 0
    if not meta["validation"]["measurable"]:  # 8 held-out questions of a 40-row file: the interval is wide
        assert "not measurable with this detector" in text
