"""`steer-trace evaluate`'s text stage and its time ledger: the verdict line and the report section from tables
scored by the core (`text_eval.scored`, fast, synthetic samples); on smollm2 (slow) a planted effect shows in the
detector rate and a random vector's does not, the section appears with real numbers in a whole evaluation, a
rerun computes nothing and still reports what computing the report took, and `text_questions=0` skips the stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from steer_trace.detectors import Validation
from steer_trace.text_eval import scored
from studies.evaluate import report
from studies.evaluate.ledger import Ledger
from studies.evaluate.report import time_line
from studies.evaluate.text import tables_of
from studies.evaluate.verdicts import text as text_verdict
from studies.evaluate.verdicts import verdicts

REPO = Path(__file__).resolve().parents[1]
MEASURABLE = Validation(0.97, 0.9, 1.0, 20, 20)

# -- verdict and report from synthetic samples, scored by the core ------------------------------------------------


def _samples(steered: float, random: float, n: int = 12, k: int = 2, perplexity: float = 10.0,
             prompted: float = 0.6, seed: int = 0) -> pl.DataFrame:
    """Per (condition, question, sample): a detector score around the condition's planted rate."""
    rng = np.random.default_rng(seed)
    rates = {"unsteered": 0.3, "steered": steered, "random-1": random, "random-2": random, "prompted": prompted}
    rows = []
    for condition, rate in rates.items():
        for q in range(n):
            for s in range(k):
                rows.append({"condition": condition, "coef": 0.0 if condition in ("unsteered", "prompted") else 0.8,
                             "question": q, "sample": s, "seed": str(q * 10 + s), "text": f"{condition} text {q}.{s}",
                             "stopped": "length", "n_tokens": 8,
                             "concept": float(np.clip(rate + rng.normal(0, 0.05), 0, 1)),
                             "perplexity": (perplexity if condition == "steered" else 10.0) * float(
                                 np.exp(rng.normal(0, 0.1))),
                             "distinct": 0.9, "relevance_pmi": 0.5 + float(rng.normal(0, 0.05))})
    return pl.DataFrame(rows)


def _text_tables(steered: float, random: float, validation: Validation = MEASURABLE, **kw) -> dict:
    meta = {"layer": 14, "coefs": [0.8], "n_questions": 12, "samples": 2, "max_new_tokens": 8, "temperature": 0.7,
            "top_p": 0.95, "seed": 0, "n_random": 2, "prompt": "You prefer now.", "compute_s": 12.0}
    result = scored(_samples(steered, random, **kw), [f"question {i}?" for i in range(12)], "diffmean:x@L14",
                    validation, meta)
    return tables_of({"add": result}, {"add": meta})


def test_a_planted_text_effect_is_named_beyond_random_and_a_null_is_not():
    line = text_verdict(_text_tables(steered=0.7, random=0.3))
    assert line.startswith("**In the text it writes** (12 held-out questions x 2 samples x 8 tokens; detector AUROC "
                           "0.97 [0.90, 1.00]"), line
    assert re.search(r"adding \(layer 14, x\+0\.8\): raises the detector rate by \+0\.[34]\d\d \[\+0\.3", line), line
    assert "beyond each of 2 random directions" in line and "prompted +0.3" in line
    assert "does not move the detector either" not in line  # prompted +0.3: the detector sees the behaviour
    null = text_verdict(_text_tables(steered=0.3, random=0.3))
    assert "no text effect" in null and "detectable" in null and "raises" not in null
    blind = text_verdict(_text_tables(steered=0.3, random=0.3, prompted=0.3))
    assert "asking for it does not move the detector either, so it may not read this behaviour" in blind
    as_random = text_verdict(_text_tables(steered=0.7, random=0.7))
    assert "but not beyond all of 2 random directions" in as_random


def test_no_text_verdict_without_a_validated_detector_or_where_the_text_broke():
    unvalidated = text_verdict(_text_tables(0.7, 0.3, Validation(0.65, 0.45, 0.85, 20, 20)))
    assert unvalidated.startswith("**In the text it writes: not measurable with this detector**")
    assert "detector rate" not in unvalidated
    broken = text_verdict(_text_tables(0.7, 0.3, perplexity=5000.0))
    assert "no verdict, text broken" in broken and "raises" not in broken


SUMMARY = {"model": "smollm2-135m", "behaviour": "myopic", "dataset": "x.jsonl", "n_rows": 100, "family": "letters",
           "options": "2", "orders": "both", "splits": {"vector": 60, "validation": 20, "test": 40},
           "scoring_reason": "content scoring: because", "coefs": [0.8], "layers": [14], "guard": "a guard",
           "prompts": {"prompt": "Now.", "anti_prompt": "Later.", "source": "given"}, "vector": "test",
           "timings": {"setup": 1.0, "test": 1.0, "total": 3.0}, "computed": 0, "command": "steer-trace evaluate",
           "compute": {"setup": 40.0, "quality": 10.0, "search": 300.0, "test": 600.0, "text": 90.0},
           "compute_runs": 2}


def _report(folder: Path, tables: dict, summary: dict) -> str:
    from test_evaluate import _tables

    report.save_tables({**_tables(0.3, 0.02, 0.05), **tables}, summary, folder)
    report.write(folder)
    return (folder / "report.md").read_text()


def test_the_report_has_the_text_section_and_its_verdict_line(tmp_path):
    md = _report(tmp_path, _text_tables(0.7, 0.3), {**SUMMARY, "text": {"status": "ran", "note": ""}})
    top = md.split("## Setup")[0]
    assert "- **In the text it writes** (12 held-out questions" in top
    section = md.split("## In the text it writes")[1].split("## Reproduce")[0]
    assert "Behaviour detector `diffmean:x@L14`: AUROC 0.97 [0.90, 1.00]" in section
    assert re.search(r"\| steered \| 0\.[67]\d\d \[", section) and re.search(r"\| prompted \| 0\.[56]\d\d \[", section)
    assert "| steered - random-1 |" in section and "| moves |" in section
    assert section.count("unsteered: unsteered text") == 2  # two example pairs
    assert "In the text it writes" in (tmp_path / "report.html").read_text()


def test_a_skipped_text_stage_says_so_and_adds_no_verdict(tmp_path):
    md = _report(tmp_path, {}, {**SUMMARY, "text": {"status": "skipped", "note": "not run (--text-questions 0)"}})
    assert "## In the text it writes\n\nNot run (--text-questions 0)." in md
    assert "**In the text it writes" not in md


# -- the time ledger ----------------------------------------------------------------------------------------------


def test_the_ledger_sums_the_runs_that_computed_and_a_cached_rerun_adds_nothing(tmp_path):
    config = {"model": "m", "data": "d"}
    first = Ledger(tmp_path, config)
    count = [0]
    with first.stage("search", lambda: count[0]):
        count[0] += 3  # computed points
    first.charge("test", 100.0)
    again = Ledger(tmp_path, config)  # a rerun reading every point from the cache
    with again.stage("search", lambda: count[0]):
        pass
    assert set(again.totals()) == {"search", "test"} and again.totals()["test"] == 100.0
    assert len(again.runs) == 1  # the rerun left no entry
    later = Ledger(tmp_path, config)  # a run that resumed and computed more
    later.charge("text", 20.0)
    assert Ledger(tmp_path, config).totals()["test"] == 100.0 and len(Ledger(tmp_path, config).runs) == 2
    assert Ledger(tmp_path, {"model": "other"}).totals() == {}
    assert not list(tmp_path.glob("*/*.json"))  # not where the results index reads tables' sidecars


def test_the_time_line_says_this_run_and_the_whole_computation():
    line = time_line({**SUMMARY, "load": "1.00"})
    assert line.startswith("Time: this run 3 s (setup 1 s, test 1 s); 0 points computed in it")
    assert "Computing the report took 1040 s in all (setup 40 s, quality 10 s, search 300 s, test 600 s, text 90 s; " \
           "summed over the 2 runs that computed its points)" in line
    partial = time_line({**SUMMARY, "compute": {"text": 90.0}})
    assert "took at least 90 s in all" in partial and "test computed before compute time was kept" in partial


# -- on smollm2 ---------------------------------------------------------------------------------------------------

SEA = ["the waves roll onto the sandy beach", "the ocean is deep, blue and full of fish",
       "sailing on the sea with a salty wind", "the tide comes in over the shore", "whales swim far out in the ocean",
       "seagulls fly over the harbour and the boats", "the beach at sunset with the sound of the surf",
       "diving under the sea to see the coral reef"]
OTHER = ["the office printer is out of paper again", "a spreadsheet of monthly sales figures",
         "the train to the city centre was late", "cooking pasta with tomatoes and garlic",
         "the library opens at nine in the morning", "a meeting about the budget for next quarter",
         "fixing the engine of the car in the garage", "the football match ended in a draw"]
WHEN = ["weekend", "holiday", "afternoon", "morning", "day off", "evening", "trip", "summer", "birthday", "retirement"]
ASK = ["Describe your ideal {x}.", "What would you do on a perfect {x}?", "Tell me about a good {x}.",
       "How would you spend a free {x}?", "What comes to mind when you think of your next {x}?",
       "Plan a {x} for me.", "What makes a {x} worth remembering?", "Write a line about a {x}."]


def _sea_file(folder: Path) -> Path:
    """80 A/B questions whose matching answer is about the sea (its position alternates), the other about
    something else: the behaviour "talks about the sea"."""
    rows = []
    for i, (x, ask) in enumerate((x, a) for a in ASK for x in WHEN):
        sea, other = f"My ideal {x}: {SEA[i % 8]}.", f"My ideal {x}: {OTHER[(i * 3) % 8]}."
        first, second = (sea, other) if i % 2 else (other, sea)
        rows.append({"question": f"{ask.format(x=x)}\n\nChoices:\n (A) {first}\n (B) {second}",
                     "answer_matching_behavior": " (A)" if i % 2 else " (B)",
                     "answer_not_matching_behavior": " (B)" if i % 2 else " (A)"})
    path = folder / "sea.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _sea_vector(model, layer: int, random: bool = False):
    """The sea direction, read as the detector reads texts (mean over an answer's tokens at `layer`): sea
    sentences minus other sentences, from texts of its own (not the file's). Adding it makes the model write about
    the sea, which the detector, fitted on the file's held-out answer texts, reads. `random`: an equal-norm random
    direction instead (the null)."""
    from steer_trace.content import answer_token_means
    from steer_trace.detectors import prompt_of
    from steer_trace.vectors import SteeringVector

    texts = [f"I love {s}." for s in SEA] + [f"I love {s}." for s in OTHER]
    means = answer_token_means(model, [prompt_of("Tell me something.")] * len(texts), texts, [layer], 8)[layer]
    direction = means[:8].mean(0) - means[8:].mean(0)
    if random:
        noise = torch.randn(direction.numel(), generator=torch.Generator().manual_seed(11))
        direction = noise * direction.norm() / noise.norm()
    return SteeringVector({layer: direction}, {"name": "sea", "method": "random" if random else "mean difference"})


PLANTED = dict(n_vector=8, n_validation=8, n_test=20, n_random=10, layers=(10,), coefs=(0.4,), scoring="content",
               tax_docs=2, tax_tokens=32, gen_tokens=6, text_questions=10, text_samples=2, text_tokens=16,
               text_random=2, text_detector=16)


@pytest.mark.slow
def test_a_planted_sea_vector_raises_the_detector_rate_beyond_random_directions_and_a_random_vector_does_not(
        smol, tmp_path):
    """Measured (2026-12-07, load ~6): the sea vector at layer 10, x0.4 of the residual norm, raises the rate by
    +0.71 [+0.54, +0.84] (random directions -0.03, +0.13); at x0.8 the text breaks (fluency 0.27): no verdict."""
    from studies.evaluate.run import Options, _run, open_evaluation
    from studies.evaluate.text import text_stage

    vector = tmp_path / "sea.safetensors"
    _sea_vector(smol, 10).save(vector)
    opts = Options(**PLANTED, vector_file=str(vector))
    ev = open_evaluation(smol, str(_sea_file(tmp_path)), opts, root=tmp_path / "results")
    picks, prompts = {"add": (10, 0.4), "subtract": None}, {"add": "Talk about the sea.", "subtract": "-"}
    tables = text_stage(ev, opts, _run(ev, opts, "text"), picks, prompts)["tables"]
    meta = tables["text_meta"].row(0, named=True)
    assert meta["measurable"] and meta["n_questions"] == 10, meta
    line = text_verdict(tables)
    assert "adding (layer 10, x+0.4): raises the detector rate by +" in line, line
    assert "beyond each of 2 random directions" in line, line

    ev.vector = _sea_vector(smol, 10, random=True)  # the same evaluation, an equal-norm random vector
    null = text_stage(ev, opts, _run(ev, opts, "text"), picks, prompts)["tables"]
    assert null["text_meta"]["measurable"][0]
    line = text_verdict(null)
    assert "raises the detector rate" not in line, line


SMALL = dict(n_vector=12, n_validation=8, n_test=12, n_random=10, layers=(14,), coefs=(0.2, 0.8), scoring="content",
             tax_docs=2, tax_tokens=48, gen_tokens=10, text_questions=10, text_samples=1, text_tokens=8)


@pytest.mark.slow
def test_the_evaluation_writes_the_text_section_and_a_rerun_computes_nothing(smol, tmp_path):
    from dataclasses import replace

    from studies.evaluate.run import Options, evaluate

    data, root = str(REPO / "data" / "behaviours" / "myopic.jsonl"), tmp_path / "results"
    ev = evaluate(smol, data, Options(**SMALL), root=root)
    rates = ev.tables["text_summary"].filter(pl.col("measure") == "concept")
    assert rates.height >= 5 and rates["mean"].is_between(0, 1).all()  # real detector rates, every condition
    assert ev.study.computed > 0 and ev.summary["text"]["status"] == "ran"
    first = ev.summary["compute"]
    assert set(first) >= {"setup", "search", "test", "text"} and first["text"] > 0
    report.save_tables(ev.tables, ev.summary, tmp_path / "out")
    report.write(tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## In the text it writes" in md and "| steered |" in md and "Behaviour detector `diffmean:" in md
    assert any(line.startswith("**In the text it writes") for line in verdicts(ev.tables))

    again = evaluate(smol, data, Options(**SMALL), root=root)
    assert again.study.computed == 0
    assert again.summary["compute"] == first  # the rerun reports what computing the report took
    assert again.tables["text_samples"]["text"].to_list() == ev.tables["text_samples"]["text"].to_list()
    report.save_tables(again.tables, again.summary, tmp_path / "again")
    report.write(tmp_path / "again")
    assert f"took {sum(first.values()):.0f} s in all" in (tmp_path / "again" / "report.md").read_text()

    skipped = evaluate(smol, data, replace(Options(**SMALL), text_questions=0), root=root)
    assert skipped.study.computed == 0 and "text_meta" not in skipped.tables
    assert skipped.summary["text"]["note"] == "not run (--text-questions 0)"


def test_the_command_takes_the_text_sizes_and_refuses_a_negative_one():
    from click.testing import CliRunner

    from tasks.cli import main

    shown = CliRunner().invoke(main, ["evaluate", "--help"])
    words = " ".join(shown.output.split())  # help text wraps
    assert shown.exit_code == 0 and "--text-questions" in words and "(0: no text stage;" in words
    data = str(REPO / "data" / "behaviours" / "myopic.jsonl")
    bad = CliRunner().invoke(main, ["evaluate", "--dataset", data, "--text-questions", "-1"])
    assert bad.exit_code == 2 and "--text-questions" in bad.output


@pytest.mark.slow
def test_the_text_section_renders_in_headless_chromium_without_a_console_error(tmp_path):
    import subprocess

    from test_evaluate import PROBE, _chromium

    _report(tmp_path, _text_tables(0.7, 0.3), {**SUMMARY, "text": {"status": "ran", "note": ""}})
    page = (tmp_path / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1))
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probed.as_uri()]
    dom = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert "<h2>In the text it writes</h2>" in dom.stdout and "steered - random-1" in dom.stdout
    probe = dom.stdout.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0].replace("&quot;", '"')
    found = json.loads(probe)
    assert found["errors"] == [] and all(w > 0 for w in found["widths"]), found
