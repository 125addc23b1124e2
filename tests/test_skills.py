"""Skills experiment: the paper's step rule, the vector/evaluation split of every corpus source, the two permuted
controls, extract + sweep through the CLI on a tiny slice (smollm2-135m) with the scored-token accounting, resume,
and figures / report tables from cached tables without a model."""
from __future__ import annotations

from itertools import pairwise

import numpy as np
import polars as pl
import pytest
import torch
from click.testing import CliRunner

from studies.skills import corpora
from steer_trace.cache import Run, load_tables
from studies.skills.corpora import (
    DOMAINS,
    Corpus,
    Document,
    check_disjoint,
    load_corpus,
    load_shared,
    problem_split,
    wikitext_sections,
)
from steer_trace.errors import UserError
from studies.skills import profiles
from studies.skills import run as skills

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# -- the coefficient schedule and the step rule -----------------------------------------------------------

def run_schedule(coefs, scores):
    asked = []

    def score(c):
        asked.append(c)
        return scores[c]

    done = skills.coefficient_schedule(coefs, score)
    assert done == asked  # every coefficient run is scored once, in order
    return done


def papers_visits(n_coefs, target_scores):
    """The authors' loop (src/evaluate.py, determine_next_step), written out from its description: index 0 is
    the baseline; after index i > 0 the target's relative score r gives: r < 0.05 stop, r < 0.15 i += 5,
    else i += 1."""
    visited, i = [], 0
    while i < n_coefs:
        visited.append(i)
        if i == 0:
            i = 1
            continue
        r = target_scores[i]
        i = 10**100 if r < 0.05 else i + 5 if r < 0.15 else i + 1
    return visited


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


def test_step_rule_on_the_target_domain_steps_exactly_as_the_papers_loop():
    """A hand-built sequence of per-domain relative accuracies over the paper's 34 coefficients: text collapses
    early (which the old max-over-domains rule ignores only while code holds), the target code falls in steps."""
    coefs = profiles.PAPER_COEFS
    code = [1.0] * 8 + [0.3, 0.14, 0.5, 0.5, 0.5, 0.5, 0.12] + [0.2] * 5 + [0.13] * 5 + [0.04] * 9
    text = [1.0] * 4 + [0.02] * 30  # far below the stop level from the fifth value on
    assert len(code) == len(text) == len(coefs) == 34
    by_coef = {c: {"code": code[i], "text": text[i], "python": 0.5} for i, c in enumerate(coefs)}
    paper = profiles.STEP_RULES["paper"]
    visited = skills.coefficient_schedule(coefs, lambda c: paper(by_coef[c], "code"))
    expected = [coefs[i] for i in papers_visits(len(coefs), code)]
    assert visited == expected
    assert [coefs.index(c) for c in visited] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 19, 20, 25]
    # the old rule (largest relative accuracy over the three domains) is an option, and steps otherwise
    old = skills.coefficient_schedule(coefs, lambda c: profiles.STEP_RULES["max"](by_coef[c], "code"))
    assert old != visited and len(old) == len(coefs)  # python holds at 0.5: it never skips
    assert profiles.make_profile("default").rule == "paper"
    assert profiles.make_profile("default", rule="max").rule == "max"
    with pytest.raises(UserError, match="step rule"):
        profiles.make_profile("default", rule="median")


def test_default_coefficients_are_the_papers_list():
    coefs = profiles.PAPER_COEFS
    assert coefs[:5] == (0.0, 0.25, 0.5, 0.6, 0.7) and coefs == tuple(sorted(coefs)) and len(coefs) == 34
    assert {4.5, 5.0, 7.0} <= set(coefs) and 25.0 not in coefs and coefs[-1] == 30.0
    # every run the authors saved visits its coefficients in this list as their step rule allows
    assert profiles.make_profile("default").coefs == coefs
    for used in ([*coefs[:19], 4.0, 8.0, 30.0], [*coefs[:22], 6.0, 15.0], [*coefs[:15], 2.5, 4.5],
                 [*coefs[:28], 20.0], [*coefs[:24], 8.0], [*coefs[:14], 2.25], [*coefs[:21], 5.0]):
        steps = [coefs.index(b) - coefs.index(a) for a, b in pairwise(used)]
        assert set(steps) <= {1, 5}, used


def test_headline_points_and_curve_order():
    assert skills.is_headline(14, 1.5, "none", 30) and skills.is_headline(0, 1.0, "none", 30)
    assert skills.is_headline(14, 2.0, "means", 30) and skills.is_headline(14, 1.0, "components", 30)
    assert not skills.is_headline(14, 2.25, "none", 30) and not skills.is_headline(9, 1.5, "none", 30)
    order = skills.curve_order(profiles.sweep_layers(30), ("code", "python"), 30, True)
    assert order[:8] == [("code", 14, "none"), ("python", 14, "none"), ("code", 0, "none"), ("python", 0, "none"),
                         ("code", 14, "components"), ("python", 14, "components"), ("code", 14, "means"),
                         ("python", 14, "means")]
    assert len(order) == 7 * 2 + 4 and len(set(order)) == len(order)


def test_layers_follow_the_papers_relative_depths():
    assert profiles.sweep_layers(32) == [0, 5, 10, 15, 20, 25, 30]
    assert profiles.sweep_layers(30) == [0, 5, 9, 14, 19, 23, 28]
    assert profiles.sweep_layers(24) == [0, 4, 8, 11, 15, 19, 23]
    assert profiles.middle_layer(32) == 15 and profiles.middle_layer(30) == 14 and profiles.middle_layer(24) == 11


# -- the two permuted controls ---------------------------------------------------------------------------

def test_permuted_controls_have_the_norms_they_should():
    gen = torch.Generator().manual_seed(3)
    # real means share most of their structure (the residual stream's large components): their difference is
    # short, while two independent permutations break the match and give a much longer vector
    common = {L: 3 * torch.randn(64, generator=gen) for L in range(3)}
    text = {L: common[L] + 0.5 * torch.randn(64, generator=gen) for L in range(3)}
    code = {L: common[L] + 0.5 * torch.randn(64, generator=gen) for L in range(3)}
    rows = [{"domain": d, "layer": L, "component": k, "value": float(means[L][k])}
            for d, means in (("text", text), ("code", code), ("python", code)) for L in means for k in range(64)]
    config = {"model": "m", "revision": "r", "profile": "default", "data": "shared", "seed": 13,
              "n_vector": {}, "documents": {}, "vector_tokens": 8}
    vectors = skills._vectors_from_table(pl.DataFrame(rows), config, "k", permute_seed=0)
    v, comp, means = (vectors[("code", c)] for c in ("none", "components", "means"))
    _, perms = skills.permuted_means_difference(text, code, 0)
    for L in range(3):
        diff = text[L] - code[L]
        assert torch.allclose(v[L], diff)
        # norm-matched: the vector's own components in another order
        assert comp[L].norm() == pytest.approx(float(diff.norm()), rel=1e-6)
        assert sorted(comp[L].tolist()) == pytest.approx(sorted(diff.tolist())) and not torch.allclose(comp[L], diff)
        # the paper's: each mean permuted on its own, then differenced
        p1, p2 = perms[L]
        assert sorted(p1.tolist()) == sorted(p2.tolist()) == list(range(64)) and not torch.equal(p1, p2)
        assert torch.allclose(means[L], text[L][p1] - code[L][p2])
        assert means[L].norm() == pytest.approx(float((text[L][p1] - code[L][p2]).norm()), rel=1e-6)
        assert float(means[L].norm()) > 1.5 * float(diff.norm())  # the offsets no longer cancel: much longer
    assert {vectors[("code", c)].meta["control"] for c in skills.CONTROLS} == set(skills.CONTROLS)


# -- data and the split ------------------------------------------------------------------------------

def _groups(corpus, role):
    return {d.group for dom in DOMAINS for d in corpus.get(role, dom)}


def _assert_disjoint(corpus):
    check_disjoint(corpus)
    assert not _groups(corpus, "vector") & _groups(corpus, "eval")
    texts = {role: {d.text for dom in DOMAINS for d in corpus.get(role, dom)} for role in ("vector", "eval")}
    assert not texts["vector"] & texts["eval"]


def test_shared_split_never_puts_a_problem_or_article_on_both_sides(shared_data):
    corpus = load_shared(shared_data)  # everything available
    _assert_disjoint(corpus)
    # four disjoint problem groups: the code problems are never the Python problems
    problems = {(role, dom): {d.group for d in corpus.get(role, dom)} for role in ("vector", "eval")
                for dom in ("code", "python")}
    assert {k: len(v) for k, v in problems.items()} == {("vector", "code"): 12, ("eval", "code"): 18,
                                                        ("vector", "python"): 22, ("eval", "python"): 112}
    names = list(problems)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not problems[a] & problems[b], (a, b)
    # general code is C++/Go/Java/JS/Rust, mixed from the start; Python is HumanEval
    assert sorted(d.lang for d in corpus.get("eval", "code")[:5]) == ["cpp", "go", "java", "js", "rust"]
    assert all(d.source == "humaneval" and d.lang == "python" for d in corpus.get("eval", "python"))
    assert {d.source for d in corpus.get("vector", "text")} == {"wikitext-2/valid"}
    assert {d.source for d in corpus.get("eval", "text")} == {"wikitext-2/test"}
    # documents are whole prompt + solution: they reach the code bodies
    assert all("return" in d.text for d in corpus.get("eval", "python"))
    # the split does not depend on how many documents are taken
    small = load_shared(shared_data, n_vector=5, n_eval=7)
    assert [d.text for d in small.get("eval", "code")] == [d.text for d in corpus.get("eval", "code")[:7]]
    split = problem_split(13)
    assert sorted(i for ids in split.values() for i in ids) == list(range(164))


def test_project_set_is_the_default_and_disjoint(monkeypatch):
    monkeypatch.delenv("STEER_TRACE_DATA", raising=False)
    corpus = load_corpus()
    assert corpus.origin == "project"
    assert corpus.summary() == {"vector": {d: 20 for d in DOMAINS}, "eval": {d: 20 for d in DOMAINS}}
    _assert_disjoint(corpus)
    assert {d.lang for d in corpus.get("eval", "code")} <= set(corpora.LANGUAGES)
    with pytest.raises(UserError, match="does not hold"):
        load_corpus("/nonexistent-folder")


def test_hub_corpus_is_disjoint(monkeypatch):
    """The hub path with a fake stream: train rows on the vector side, validation rows on the evaluation side
    (the same row text in both splits is caught)."""
    def fake_stream(name, split, seed):
        for i in range(40):
            if name == corpora.PILE:
                yield {"text": f"{split} row {i}", "meta": {"pile_set_name": "Github" if i % 2 else "Wikipedia"}}
            else:
                yield {"content": f"def f_{split}_{name[-5:]}_{i}(): pass"}

    monkeypatch.setattr(corpora, "_stream", fake_stream)
    corpus = corpora.load_corpus(hub=True, n_vector=5, n_eval=4)
    assert corpus.summary() == {"vector": {"text": 5, "code": 5, "python": 5}, "eval": {"text": 4, "code": 4,
                                                                                          "python": 4}}
    _assert_disjoint(corpus)

    def leaky(name, split, seed):
        for i in range(40):
            yield {"text": f"row {i}", "meta": {"pile_set_name": "Github" if i % 2 else "Wikipedia"},
                   "content": f"def f{i}(): pass"}

    monkeypatch.setattr(corpora, "_stream", leaky)
    with pytest.raises(UserError, match="overlap"):
        corpora.load_corpus(hub=True, n_vector=5, n_eval=4)


def test_overlap_is_detected():
    doc = Document("python", "humaneval", "problem/3", "def f(): pass")
    other = Document("code", "humaneval-x/go", "problem/3", "func F() {}")  # same problem, other language
    clean = Document("text", "x", "article/A", "Some text.")
    overlapping = Corpus("shared", {"vector": {"python": [doc], "code": [], "text": [clean]},
                                    "eval": {"python": [], "code": [other], "text": []}})
    with pytest.raises(UserError, match="overlap"):
        check_disjoint(overlapping)


def test_wikitext_sections_keep_headings_and_article_titles(shared_data):
    path = shared_data / "skills_samples/pytorch_examples/word_language_model/data/wikitext-2/valid.txt"
    sections = wikitext_sections(path)
    assert sections[0][0] == "Homarus gammarus" and sections[0][1].startswith("Homarus gammarus\n")
    assert all(len(body.split()) >= 40 for _, body in sections)
    assert " @-@ " not in sections[0][1]


def test_eval_sets_reach_their_token_targets(smol, shared_data):
    corpus = load_shared(shared_data)
    profile = profiles.make_profile("default", sweep_tokens=300, headline_tokens=900, eval_tokens=64)
    sets = skills.eval_sets(corpus, profile, smol.tokenizer)
    for size, target in (("sweep", 300), ("headline", 900)):
        s = sets[size]
        for domain in DOMAINS:
            texts = [t for d, t in zip(s.domains, s.texts) if d == domain]
            counts = [skills.scored_tokens(smol.tokenizer, t, 64) for t in texts]
            assert sum(counts) >= target and sum(counts) - max(counts) < target  # the fewest documents that do
    assert set(sets["sweep"].texts) < set(sets["headline"].texts)
    assert set(sets["headline"].languages) == set(corpora.LANGUAGES)


# -- extract + sweep through the CLI on a tiny slice ---------------------------------------------------

TINY = ["--n-vector", "3", "--max-tokens", "16"]
TINY_SWEEP = ["--sweep-tokens", "20", "--headline-tokens", "40", "--max-tokens", "16", "--layers", "14",
              "--coefs", "1,30", "--no-control"]


@pytest.fixture
def cli(monkeypatch, smol):
    """Invoke `steer-trace ...`; the model is the session's smollm2-135m, and each load is counted."""
    import studies.skills.cli as task
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


@pytest.mark.slow
def test_extract_and_sweep_tiny_slice_then_resume(cli, shared_data, results_dir, monkeypatch):
    data = ["--data-dir", str(shared_data)]
    out = cli("skills", "extract", *data, *TINY)
    assert "3 domains read, 0 cached" in out
    vectors = skills.load_vectors(results_dir, "smollm2-135m")
    assert set(vectors) == {(t, c) for t in ("code", "python") for c in skills.CONTROLS}
    vec = vectors[("code", "none")]
    assert vec.meta["data"] == "shared" and vec.meta["n_docs"] == {"text": 3, "code": 3, "python": 3}
    assert len(vec.layers) == 30
    # the vector is text mean - code mean, as stored in the cached table
    table = load_tables("skills_extract", results_dir)
    at14 = {d: table.filter((pl.col("domain") == d) & (pl.col("layer") == 14)).sort("component")["value"].to_numpy()
            for d in DOMAINS}
    np.testing.assert_allclose(vec[14].numpy(), at14["text"] - at14["code"], rtol=1e-5, atol=1e-5)

    # a killed sweep: token_accuracy fails after the two baselines and one steered point; every call's
    # counts are kept, to compare with what the table reports
    from steer_trace import score
    from tasks.cli import main

    real = score.token_accuracy
    scored = []

    def spy(model, docs, plans, *args, **kwargs):
        out = real(model, docs, plans, *args, **kwargs)
        scored.append((plans[0].label, plans[0].injections[0].coef if plans[0].injections else 0.0, list(docs),
                       out[0][1].clone()))
        return out

    def flaky(*args, **kwargs):
        if len(scored) >= 3:
            raise RuntimeError("killed")
        return spy(*args, **kwargs)

    monkeypatch.setattr(score, "token_accuracy", flaky)
    with pytest.raises(RuntimeError, match="killed"):
        CliRunner().invoke(main, ["skills", "sweep", *data, "--targets", "code", *TINY_SWEEP], catch_exceptions=False)
    monkeypatch.setattr(score, "token_accuracy", spy)

    loads_before = len(cli.loads)
    out = cli("skills", "sweep", *data, "--targets", "code", *TINY_SWEEP)
    assert "1 points computed, 3 cached" in out, out  # the three finished points were read back
    sweep = load_tables("skills_sweep", results_dir)
    points = sweep.select(*skills.POINT_KEYS).unique()
    assert set(points["size"]) == {"sweep", "headline"}
    assert sweep.filter((pl.col("coef") == 1) & (pl.col("layer") == 14))["size"].unique().to_list() == ["headline"]
    assert set(sweep["domain"]) == set(DOMAINS)
    # the token counts reported are the tokens scored: per point and domain, the sum of the counts token_accuracy
    # returned for that point's documents (the baselines were scored once, in the killed run)
    sets = {len(docs): counts for _, _, docs, counts in scored}
    for row in sweep.iter_rows(named=True):
        assert row["n_tokens"] >= {"sweep": 20, "headline": 40}[row["size"]]
    docs_sizes = sweep.group_by(*skills.POINT_KEYS).agg(pl.col("n_docs").sum(), pl.col("n_tokens").sum())
    for row in docs_sizes.iter_rows(named=True):
        assert int(sets[row["n_docs"]].sum()) == row["n_tokens"]
    steered = [s for s in scored if s[1] == 30.0]
    assert len(steered) == 1
    c30 = sweep.filter(pl.col("coef") == 30)
    assert int(c30["n_tokens"].sum()) == int(steered[0][3].sum())
    # intervals on every point; c = 0 is the baseline, exactly 1 relative
    assert (
        (sweep["accuracy_lo"] <= sweep["accuracy"] + 1e-9) & (sweep["accuracy"] <= sweep["accuracy_hi"] + 1e-9)
    ).all()
    assert (
        (sweep["relative_lo"] <= sweep["relative"] + 1e-9) & (sweep["relative"] <= sweep["relative_hi"] + 1e-9)
    ).all()
    assert (sweep.filter(pl.col("coef") == 0)["relative"] == 1.0).all()
    assert (sweep.filter(pl.col("coef") == 30)["relative"] < 0.5).all()

    # a second run computes nothing and never opens the model; the report reads the cached points
    again = cli("skills", "sweep", *data, "--targets", "code", *TINY_SWEEP)
    assert "0 points computed" in again and len(cli.loads) == loads_before + 1
    again = cli("skills", "extract", *data, *TINY)
    assert "0 domains read, 3 cached" in again and len(cli.loads) == loads_before + 1
    out = cli("skills", "report", "--results", str(results_dir))
    assert "wrote" in out and (results_dir / "skills_report" / "smollm2-135m.md").exists()
    # the language matrix splits each domain's tokens over its languages, nothing lost or added
    langs = pl.read_csv(results_dir / "skills_report" / "smollm2-135m_languages.csv")
    domains = pl.read_csv(results_dir / "skills_report" / "smollm2-135m_points.csv")
    assert {"text", "python", "cpp"} <= set(langs["language"]) <= set(corpora.LANGUAGES)
    keys = list(skills.POINT_KEYS)
    assert langs.group_by(keys).agg(pl.col("n_tokens").sum()).sort(keys).equals(
        domains.group_by(keys).agg(pl.col("n_tokens").sum()).sort(keys))
    figures = plots_build(results_dir, results_dir / "figures")
    assert "skills_language_matrix.png" in {p.name for p in figures}


def plots_build(root, out):
    from studies.skills import plots

    return plots.build(root, out)


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
        middle = profiles.middle_layer(n_layers)
        curves = [(L, "none") for L in profiles.sweep_layers(n_layers)] + [(middle, "components")]
        for layer, control in curves:
            for coef in (0.0, 0.5, 1.0, 2.0, 4.0):
                for domain, b in base.items():
                    hit = np.exp(-coef * (1.5 if domain == target and 0 < layer and control == "none" else 0.7))
                    acc = b * hit
                    rows.append({"model": model, "profile": "quick", "target": target, "layer": layer,
                                 "coef": coef, "control": control, "domain": domain, "accuracy": acc,
                                 "accuracy_lo": acc * 0.9, "accuracy_hi": acc * 1.1, "n_tokens": 500,
                                 "baseline": b, "relative": acc / b, "data": "shared", "run": "r1"})
    return pl.DataFrame(rows)


def synthetic_means(model, n_layers=30, d=64):
    rng = np.random.default_rng(1)
    frames = []
    for domain in DOMAINS:
        for layer in (0, profiles.middle_layer(n_layers)):
            frames.append(pl.DataFrame({
                "model": model, "profile": "quick", "data": "shared", "run": "e1", "domain": domain, "n_docs": 10,
                "layer": layer, "figure_layer": layer == profiles.middle_layer(n_layers), "component": np.arange(d),
                "value": rng.standard_normal(d).astype(np.float32)}))
    return pl.concat(frames)


def test_figures_from_tables_without_a_model(tmp_path, monkeypatch):
    from steer_trace import models

    def no_model(*a, **k):
        raise AssertionError("figures must not load a model")

    monkeypatch.setattr(models, "load_model", no_model)
    from studies.skills import plots

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
    (label, _, first), *_ = plots.curves(rows, "code")
    assert label == "Layer 0" and first["x"][0] == pytest.approx(100) and first["y"][-1] < 10
    labels = [label for label, _, _ in plots.curves(rows, "python")]
    assert labels[-1] == "Layer 14\n(permuted components)" and len(labels) == 8


def test_figures_prefer_the_paper_profile_and_the_fullest_run():
    from studies.skills import plots

    quick = synthetic_sweep("m")
    paper = quick.with_columns(pl.lit("paper").alias("profile"), pl.lit("p1").alias("run"))
    small = paper.filter(pl.col("coef") < 2).with_columns(pl.lit("p0").alias("run"))
    chosen = plots.one_run(pl.concat([quick, paper, small]))
    assert chosen["run"].unique().to_list() == ["p1"]
