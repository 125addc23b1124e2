"""`steer-trace evaluate`'s text stage and its time ledger: the verdict line and the report section from tables
scored by the core (`text_eval.scored`, fast, synthetic samples); on smollm2 (slow) a planted effect shows in the
detector rate and a random vector's does not, the section appears with real numbers in a whole evaluation, a
rerun computes nothing and still reports what computing the report took, and `text_questions=0` skips the stage."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

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
             seed: int = 0) -> pl.DataFrame:
    """Per (condition, question, sample): a detector score around the condition's planted rate."""
    rng = np.random.default_rng(seed)
    rates = {"unsteered": 0.3, "steered": steered, "random-1": random, "random-2": random, "prompted": 0.6}
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
    null = text_verdict(_text_tables(steered=0.3, random=0.3))
    assert "no text effect" in null and "detectable" in null and "raises" not in null
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


def test_the_time_line_says_this_run_and_the_whole_computation():
    line = time_line({**SUMMARY, "load": "1.00"})
    assert line.startswith("Time: this run 3 s (setup 1 s, test 1 s); 0 points computed in it")
    assert "Computing the report took 1040 s in all (setup 40 s, quality 10 s, search 300 s, test 600 s, text 90 s; " \
           "summed over the 2 runs that computed its points)" in line
    partial = time_line({**SUMMARY, "compute": {"text": 90.0}})
    assert "took at least 90 s in all" in partial and "test computed before compute time was kept" in partial


# -- on smollm2 ---------------------------------------------------------------------------------------------------

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
