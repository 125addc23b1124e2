"""Skills experiment: the adaptive coefficient schedule, the vector/evaluation split, extract + sweep through
the CLI on a tiny slice (smollm2-135m), resume, and figures from cached tables without a model."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from steer_trace.cache import Run, load_tables
from steer_trace.corpora import (
    DOMAINS, Corpus, Document, check_disjoint, load_corpus, load_shared, problem_split, wikitext_sections,
)
from steer_trace.errors import UserError
from steer_trace.experiments import skills

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["model", "profile", "target", "layer", "coef", "permuted", "domain", "accuracy", "accuracy_lo",
           "accuracy_hi", "n_tokens", "baseline", "relative"]


# -- the coefficient schedule (fake accuracies) -------------------------------------------------------

def run_schedule(coefs, scores):
    asked = []

    def score(c):
        asked.append(c)
        return scores[c]

    done = skills.coefficient_schedule(coefs, score)
    assert done == asked  # every coefficient run is scored once, in order
    return done


def test_schedule_runs_every_value_while_accuracy_holds():
    coefs = [0, 0.5, 1, 2, 3]
    assert run_schedule(coefs, {c: 0.9 for c in coefs}) == coefs


def test_schedule_skips_ahead_five_under_15_percent_and_stops_under_5_percent():
    coefs = list(range(20))
    scores = {c: 1.0 for c in coefs}
    scores.update({3: 0.10, 8: 0.2, 9: 0.14, 14: 0.04})
    # 3 is under 0.15: next is 3 + 5 = 8 (4..7 skipped); 8 is fine: 9; 9 under 0.15: 14; 14 under 0.05: stop
    assert run_schedule(coefs, scores) == [0, 1, 2, 3, 8, 9, 14]


def test_schedule_stops_at_once_and_skip_may_run_off_the_end():
    assert run_schedule([0, 1, 2], {0: 1.0, 1: 0.01, 2: 1.0}) == [0, 1]
    assert run_schedule([0, 1, 2, 3], {0: 1.0, 1: 0.1, 2: 1.0, 3: 1.0}) == [0, 1]


def test_layers_follow_the_papers_relative_depths():
    assert skills.sweep_layers(32) == [0, 5, 10, 15, 20, 25, 30]
    assert skills.sweep_layers(30) == [0, 5, 9, 14, 19, 23, 28]
    assert skills.sweep_layers(24) == [0, 4, 8, 11, 15, 19, 23]
    assert skills.middle_layer(32) == 15 and skills.middle_layer(30) == 14 and skills.middle_layer(24) == 11
    assert skills.PAPER_COEFS[:5] == (0.0, 0.25, 0.5, 0.6, 0.7) and 2.0 in skills.PAPER_COEFS
    assert skills.PAPER_COEFS == tuple(sorted(skills.PAPER_COEFS))


# -- data and the split ------------------------------------------------------------------------------

def _groups(corpus, role):
    return {d.group for dom in DOMAINS for d in corpus.get(role, dom)}


def test_shared_split_never_puts_a_problem_or_article_on_both_sides(shared_data):
    corpus = load_shared(shared_data)  # everything available
    check_disjoint(corpus)
    vec, ev = _groups(corpus, "vector"), _groups(corpus, "eval")
    assert not vec & ev
    # the same HumanEval problem appears as C++, Go, ..., Python: all its versions sit on one side
    problems = {role: {g for g in _groups(corpus, role) if g.startswith("problem/")} for role in ("vector", "eval")}
    assert len(problems["vector"]) == len(problems["eval"]) == 82
    assert not problems["vector"] & problems["eval"]
    texts = {role: {d.text for dom in DOMAINS for d in corpus.get(role, dom)} for role in ("vector", "eval")}
    assert not texts["vector"] & texts["eval"]
    # general code mixes the languages from the start; Python is HumanEval
    langs = [d.source for d in corpus.get("vector", "code")[:6]]
    assert sorted(langs) == sorted(f"humaneval-x/{x}" for x in ("cpp", "go", "java", "js", "rust", "python"))
    assert all(d.source == "humaneval" for d in corpus.get("eval", "python"))
    assert {d.source for d in corpus.get("vector", "text")} == {"wikitext-2/valid"}
    assert {d.source for d in corpus.get("eval", "text")} == {"wikitext-2/test"}
    # the split does not depend on how many documents are taken
    small = load_shared(shared_data, n_vector=5, n_eval=7)
    assert [d.text for d in small.get("eval", "code")] == [d.text for d in corpus.get("eval", "code")[:7]]


def test_overlap_is_detected():
    doc = Document("python", "humaneval", "problem/3", "def f(): pass")
    other = Document("code", "humaneval-x/go", "problem/3", "func F() {}")  # same problem, other language
    clean = Document("text", "x", "article/A", "Some text.")
    overlapping = Corpus("shared", {"vector": {"python": [doc], "code": [], "text": [clean]},
                                    "eval": {"python": [], "code": [other], "text": []}})
    with pytest.raises(UserError, match="overlap"):
        check_disjoint(overlapping)
    split = problem_split(13)
    assert sorted(split["vector"] + split["eval"]) == list(range(164))


def test_wikitext_sections_keep_headings_and_article_titles(shared_data):
    path = shared_data / "skills_samples/pytorch_examples/word_language_model/data/wikitext-2/valid.txt"
    sections = wikitext_sections(path)
    assert sections[0][0] == "Homarus gammarus" and sections[0][1].startswith("Homarus gammarus\n")
    assert all(len(body.split()) >= 40 for _, body in sections)
    assert " @-@ " not in sections[0][1]


def test_project_set_is_the_default(monkeypatch):
    monkeypatch.delenv("STEER_TRACE_DATA", raising=False)
    corpus = load_corpus()
    assert corpus.origin == "project"
    assert corpus.summary() == {"vector": {d: 20 for d in DOMAINS}, "eval": {d: 20 for d in DOMAINS}}
    with pytest.raises(UserError, match="does not hold"):
        load_corpus("/nonexistent-folder")


# -- extract + sweep through the CLI on a tiny slice ---------------------------------------------------

TINY = ["--n-vector", "3", "--max-tokens", "16"]
TINY_SWEEP = ["--n-eval", "2", "--max-tokens", "16", "--layers", "14", "--coefs", "1,30"]


@pytest.fixture
def cli(monkeypatch, smol):
    """Invoke `steer-trace ...`; the model is the session's smollm2-135m, and each load is counted."""
    import tasks.skills as task
    from tasks.cli import main

    loads = []

    def fake_open(spec):
        loads.append(spec["name"])
        return smol

    monkeypatch.setattr(task, "_open", fake_open)
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    invoke.loads = loads
    return invoke


def test_extract_and_sweep_tiny_slice_then_resume(cli, shared_data, results_dir, monkeypatch):
    data = ["--data-dir", str(shared_data)]
    out = cli("skills", "extract", *data, *TINY)
    assert "3 domains read, 0 cached" in out
    vectors = skills.load_vectors(results_dir, "smollm2-135m")
    assert set(vectors) == {(t, p) for t in ("code", "python") for p in (False, True)}
    vec, perm = vectors[("code", False)], vectors[("code", True)]
    assert vec.meta["data"] == "shared" and vec.meta["n_docs"] == {"text": 3, "code": 3, "python": 3}
    assert len(vec.layers) == 30
    # the control: same components, other order
    assert sorted(perm[14].tolist()) == sorted(vec[14].tolist()) and not np.allclose(perm[14], vec[14])
    # the vector is text mean - code mean, as stored in the cached table
    table = load_tables("skills_extract", results_dir)
    at14 = {d: table.filter((pl.col("domain") == d) & (pl.col("layer") == 14)).sort("component")["value"].to_numpy()
            for d in DOMAINS}
    np.testing.assert_allclose(vec[14].numpy(), at14["text"] - at14["code"], rtol=1e-5, atol=1e-5)
    assert table.filter(pl.col("figure_layer"))["layer"].unique().to_list() == [14]

    # a killed sweep: token_accuracy fails after the baseline and two steered points
    import steer_trace.score as score
    from tasks.cli import main

    real = score.token_accuracy
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(score, "token_accuracy", flaky)
    with pytest.raises(RuntimeError, match="killed"):
        CliRunner().invoke(main, ["skills", "sweep", *data, *TINY_SWEEP], catch_exceptions=False)
    monkeypatch.setattr(score, "token_accuracy", real)

    loads_before = len(cli.loads)
    out = cli("skills", "sweep", *data, *TINY_SWEEP)
    assert "3 cached" in out, out  # the three finished points were read back, not recomputed
    sweep = load_tables("skills_sweep", results_dir)
    assert sweep.columns[: len(COLUMNS)] == COLUMNS
    points = sweep.select("target", "layer", "coef", "permuted").unique()
    computed = int(out.split(" points computed")[0].split()[-1])
    assert computed == points.height - 3 - 4 + 1  # minus cached, minus the four c = 0 rows, plus the baseline
    assert set(sweep["domain"]) == set(DOMAINS)
    assert set(sweep.filter(pl.col("permuted"))["layer"]) == {14}
    zero = sweep.filter(pl.col("coef") == 0)
    assert (zero["relative"] == 1.0).all() and zero.height == 4 * 3
    assert ((sweep["accuracy_lo"] <= sweep["accuracy"] + 1e-9) & (sweep["accuracy"] <= sweep["accuracy_hi"] + 1e-9)).all()
    assert (sweep["n_tokens"] > 0).all()
    # c = 30 all but wipes out next-token accuracy (a handful of tokens here, so not exactly zero)
    big = sweep.filter((pl.col("coef") == 30) & ~pl.col("permuted"))
    assert big.height and (big["relative"] < 0.5).all() and big["relative"].mean() < 0.2
    # every curve visited exactly what the schedule asks for, given the measured accuracies
    for (target, layer, permuted), part in sweep.group_by(["target", "layer", "permuted"]):
        rel = {c: part.filter(pl.col("coef") == c)["relative"].max() for c in part["coef"].unique()}
        assert sorted(rel) == skills.coefficient_schedule([0.0, 1.0, 30.0], lambda c: rel[c])

    # a second run computes nothing and never opens the model
    again = cli("skills", "sweep", *data, *TINY_SWEEP)
    assert "0 points computed" in again and len(cli.loads) == loads_before + 1
    again = cli("skills", "extract", *data, *TINY)
    assert "0 domains read, 3 cached" in again and len(cli.loads) == loads_before + 1


def test_sweep_refuses_vectors_from_another_split(cli, shared_data, results_dir):
    cli("skills", "extract", "--data-dir", str(shared_data), "--seed", "5", *TINY)
    from tasks.cli import main

    result = CliRunner().invoke(main, ["skills", "sweep", "--data-dir", str(shared_data), *TINY_SWEEP])
    assert result.exit_code == 2 and "seed 5" in result.output


# -- figures from cached tables only ------------------------------------------------------------------

def synthetic_sweep(model, n_layers=30):
    """A plausible sweep table: steering lowers code more than text in the middle layers."""
    rows = []
    base = {"text": 0.40, "code": 0.60, "python": 0.65}
    for target in ("code", "python"):
        curves = [(L, False) for L in skills.sweep_layers(n_layers)] + [(skills.middle_layer(n_layers), True)]
        for layer, permuted in curves:
            for coef in (0.0, 0.5, 1.0, 2.0, 4.0):
                for domain, b in base.items():
                    hit = np.exp(-coef * (1.5 if domain == target and 0 < layer and not permuted else 0.7))
                    acc = b * hit
                    rows.append({"model": model, "profile": "quick", "target": target, "layer": layer,
                                 "coef": coef, "permuted": permuted, "domain": domain, "accuracy": acc,
                                 "accuracy_lo": acc * 0.9, "accuracy_hi": acc * 1.1, "n_tokens": 500,
                                 "baseline": b, "relative": acc / b, "data": "shared", "run": "r1"})
    return pl.DataFrame(rows)


def synthetic_means(model, n_layers=30, d=64):
    rng = np.random.default_rng(1)
    frames = []
    for domain in DOMAINS:
        for layer in (0, skills.middle_layer(n_layers)):
            frames.append(pl.DataFrame({
                "model": model, "profile": "quick", "data": "shared", "run": "e1", "domain": domain, "n_docs": 10,
                "layer": layer, "figure_layer": layer == skills.middle_layer(n_layers), "component": np.arange(d),
                "value": rng.standard_normal(d).astype(np.float32)}))
    return pl.concat(frames)


def test_figures_from_tables_without_a_model(tmp_path, monkeypatch):
    import steer_trace.models as models

    def no_model(*a, **k):
        raise AssertionError("figures must not load a model")

    monkeypatch.setattr(models, "load_model", no_model)
    from steer_trace.plots import skills as plots

    root, out = tmp_path / "results", tmp_path / "figures"
    Run("skills_sweep", {"synthetic": 1}, root).finish([synthetic_sweep("smollm2-135m")])
    Run("skills_extract", {"synthetic": 1}, root).finish([synthetic_means("smollm2-135m")])
    paths = plots.build(root, out)
    assert sorted(p.name for p in paths) == ["activation_distribution_layer_14.png", "general_coding.png",
                                             "python_ability.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000

    # a second model: every figure carries the model name, the default model keeps the plain names too
    Run("skills_sweep", {"synthetic": 2}, root).finish([synthetic_sweep("qwen2.5-coder-0.5b", 24)])
    Run("skills_extract", {"synthetic": 2}, root).finish([synthetic_means("qwen2.5-coder-0.5b", 24)])
    names = sorted(p.name for p in plots.build(root, out))
    assert "general_coding__qwen2.5-coder-0.5b.png" in names and "general_coding__smollm2-135m.png" in names
    assert "general_coding.png" in names and "activation_distribution_layer_11__qwen2.5-coder-0.5b.png" in names
    assert "python_ability__qwen2.5-coder-0.5b.png" in names and len(names) == 9

    # the curves are what the table says: x = relative target accuracy, y = relative text accuracy, in %
    rows = plots.one_run(synthetic_sweep("m"))
    (label, first), *_ = plots.curves(rows, "code")
    assert label == "Layer 0" and first["x"][0] == pytest.approx(100) and first["y"][-1] < 10
    labels = [label for label, _ in plots.curves(rows, "python")]
    assert labels[-1] == "Layer 14\n(Permuted)" and len(labels) == 8


def test_figures_prefer_the_paper_profile_and_the_fullest_run():
    from steer_trace.plots import skills as plots

    quick = synthetic_sweep("m")
    paper = quick.with_columns(pl.lit("paper").alias("profile"), pl.lit("p1").alias("run"))
    small = paper.filter(pl.col("coef") < 2).with_columns(pl.lit("p0").alias("run"))
    chosen = plots.one_run(pl.concat([quick, paper, small]))
    assert chosen["run"].unique().to_list() == ["p1"]
