"""The gates study: paired comparisons find a planted effect and no effect where there is none; the report is
written from tables only; a tiny real run is cached and its closed documents score exactly as unsteered."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from studies.gates.experiment import paired_accuracy, relative, summarise
from studies.gates.report import BEGIN, END, report, update_readme
from tasks.cli import main

REPO = Path(__file__).resolve().parents[1]


def synthetic(n: int = 30, seed: int = 0) -> pl.DataFrame:
    """Text: steering costs ~10 of 50 tokens, the gate stays closed. Code: steering costs ~20, the gate opens."""
    rng = np.random.default_rng(seed)
    rows = []
    for domain, loss, opened in (("text", 10, False), ("code", 20, True)):
        plain = rng.integers(20, 40, n)
        steered = plain - rng.integers(loss - 3, loss + 4, n)
        for arm, correct in (("unsteered", plain), ("steered c=1", steered),
                             ("gated c=1", steered if opened else plain)):
            for d in range(n):
                rows.append({"doc": d + (0 if domain == "text" else n), "domain": domain, "arm": arm,
                             "correct": int(correct[d]), "count": 50, "gate_score": 0.0, "gate_on": opened,
                             "seconds": 1.0})
    return pl.DataFrame(rows).with_columns(pl.lit("m").alias("model"), pl.lit(14).alias("layer"),
                                           pl.lit(10).alias("gate_layer"), pl.lit(0.1).alias("threshold"))


def test_paired_accuracy_finds_a_planted_shift_and_not_a_null():
    rng = np.random.default_rng(1)
    counts = np.full(40, 100)
    a = rng.integers(30, 60, 40)
    shift, lo, hi, p = paired_accuracy(a - 5, a, counts)
    assert shift == pytest.approx(-5.0) and hi < 0 and p < 0.01
    b = a + rng.integers(-2, 3, 40)
    shift, lo, hi, p = paired_accuracy(b, a, counts)
    assert lo < 0 < hi or shift == 0
    value, lo, hi = relative(a - 5, a, counts)
    assert lo < value < hi < 100


def test_summary_side_effect_removed_target_kept():
    s = summarise(synthetic())
    text = s.filter(pl.col("domain") == "text").row(0, named=True)
    code = s.filter(pl.col("domain") == "code").row(0, named=True)
    assert text["side_effect_hi"] < -15 and text["gate_gain_lo"] > 15  # steering costs text, the gate gives it back
    assert text["gated_shift"] == 0 and text["rel_gated"] == 100 and text["gate_opened"] == 0
    assert code["gate_gain"] == 0 and code["gated_shift_hi"] < -30 and code["gate_opened"] == 30  # the target kept
    assert text["gate_f1"] == 1.0 and text["gate_precision"] == 1.0


def test_report_from_tables_only(tmp_path):
    root = tmp_path / "results"
    (root / "gates_summary").mkdir(parents=True)
    summarise(synthetic()).write_csv(root / "gates_summary" / "m.csv")
    page = report(root, tmp_path / "docs")[0]
    assert "| m, L14, c = 1 | text (non-target): 30 docs" in page.read_text()
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold\n{END}\nrest\n")
    assert update_readme(readme, root) and "old" not in readme.read_text() and "rest" in readme.read_text()
    assert not update_readme(readme, root)


@pytest.mark.slow
def test_tiny_real_run_is_cached_and_closed_documents_are_unsteered(tmp_path):
    gate = REPO / "results" / "gates_fit" / "smollm2-135m-code.safetensors"
    argv = ["gates", "experiment", "--gate", str(gate), "--n-docs", "3", "--max-tokens", "24", "--coefs", "2",
            "--results", str(tmp_path)]
    first = CliRunner().invoke(main, argv)
    assert first.exit_code == 0, first.output
    table = pl.read_csv(tmp_path / "gates_summary" / "smollm2-135m.csv")
    assert table.height == 2 and set(table["domain"]) == {"text", "code"}
    assert "tokens in" in first.output  # computed: each arm logs its time
    again = CliRunner().invoke(main, argv)
    assert again.exit_code == 0 and "tokens in" not in again.output  # cached: nothing computed
    assert pl.read_csv(tmp_path / "gates_summary" / "smollm2-135m.csv").equals(table)
