"""The behaviour experiments: every `steer-trace behaviours` command on smollm2-135m with a tiny
slice of the paper's processed sets (profile "test": 6 vector pairs, 4 test questions x both orders,
one layer), the result cache (no recomputation, resume), splits and both-orders relabelling."""
from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import polars as pl
import pytest
import torch
from click.testing import CliRunner

from steer_trace.cache import Run, load_tables
from steer_trace.data import YES_NO, balanced_slice, split
from steer_trace.errors import UserError
from studies.behaviours import data as behaviour_data
from studies.behaviours import run as exp
from studies.behaviours.scoring import point_fields, score_points
from studies.behaviours.config import open_study
from studies.behaviours.restat import stale
from studies.behaviours.profiles import COMBINATIONS, make_profile, model_layer
from studies.behaviours.vectors import vector_path
from steer_trace.plan import Plan
from steer_trace.vectors import SteeringVector
from tasks.cli import main

AB_COLUMNS = ["model", "profile", "prompt_style", "behaviour", "vector", "layer", "layers", "direction", "coef",
              "orders", "split", "n", "p_matching", "p_matching_lo", "p_matching_hi", "matching_score", "faulty",
              "answer_mass", "top_answer_share", "collapsed"]
TAX_COLUMNS = ["model", "profile", "vector", "layers", "coef", "accuracy", "accuracy_lo", "accuracy_hi",
               "n_tokens"]
PAIR = "myopic,agreeableness"  # one A/B set, one Yes/No set
LAYER = model_layer(10, 30)  # 9 on smollm2-135m


@pytest.fixture(scope="module")
def cli(smol, paper_sets, tmp_path_factory):
    """Run a behaviours command on the session's smollm2 (no reload) into a module results root."""
    root = tmp_path_factory.mktemp("behaviours") / "results"
    patch = pytest.MonkeyPatch()
    patch.setattr("studies.behaviours.cli.open_model", lambda spec: smol)

    def invoke(*args, behaviours=PAIR, expect=0):
        argv = ["behaviours", *args, "--profile", "test", "--n-test", "4", "--results", str(root),
                "--data-dir", str(paper_sets), "--behaviours", behaviours]
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == expect, (result.output, result.exception)
        return result

    invoke.root = root
    yield invoke
    patch.undo()


def computed(result) -> int:
    return int(re.search(r"(\d+) points computed", result.output).group(1))


def table(cli, experiment) -> pl.DataFrame:
    frame = load_tables(experiment, cli.root)
    assert frame is not None, f"no {experiment} table"
    return frame


def study(smol, paper_sets, root=None, **kw):
    return open_study(smol, make_profile("test", n_test=4), ("myopic", "agreeableness"), data_dir=paper_sets,
                      root=root, **kw)


# -- data: splits, orders, loading --------------------------------------------------------


def test_splits_follow_the_paper_and_never_overlap(smol, paper_sets):
    s = open_study(smol, make_profile("quick"), ("myopic",), data_dir=paper_sets)
    parts = {name: s.part("myopic", name) for name in ("vector", "validation", "test")}
    assert [len(p) for p in parts.values()] == [64, 24, 24]
    rows = {name: {item.row for item in part} for name, part in parts.items()}
    assert not rows["vector"] & rows["validation"] and not rows["vector"] & rows["test"]
    assert not rows["validation"] & rows["test"]
    full = split(s.items["myopic"], seed=13, sizes=(500, 200))  # the paper's rows 0-499 / 500-699 / 700+
    assert parts["vector"] == full["vector"][:64] and len(full["test"]) == 300
    # validation and test are label-balanced slices of the paper's parts, in the paper's order
    assert parts["validation"] == balanced_slice(full["validation"], 24)
    assert parts["test"] == balanced_slice(full["test"], 24)
    for name in ("validation", "test"):
        assert Counter(item.matching for item in parts[name]) == {"A": 12, "B": 12}
    plain = open_study(smol, make_profile("quick"), ("myopic",), data_dir=paper_sets, slices="plain")
    assert plain.part("myopic", "test") == full["test"][:24]  # the old slices, under the old result keys
    assert "slices" not in plain.base_config() and s.base_config()["slices"] == "balanced"
    project = open_study(smol, make_profile("quick"), ("agreeableness",))  # the project's 40-row set
    sizes = [len(project.part("agreeableness", n)) for n in ("vector", "validation", "test")]
    assert sizes == [20, 4, 10]  # balanced slices of the 8 / 12 rows shrink to the rarer label


def test_both_orders_doubles_the_questions_and_relabels(smol, paper_sets):
    s = study(smol, paper_sets)
    given = s.part("myopic", "test")
    asked = s.questions("myopic", "test")
    assert len(asked) == 2 * len(given)
    for item, (first, second) in zip(given, zip(asked[0::2], asked[1::2])):
        assert first == item and second.flipped and second.matching != item.matching
        a_text = item.question.split("(A)")[-1].split("(B)")[0].strip()
        assert second.question.split("(B)")[-1].strip() == a_text  # option A's text now follows (B)
    yes_no = s.questions("agreeableness", "test")
    assert [i.matching for i in yes_no[0::2]] == [i.matching for i in yes_no[1::2]]  # Yes stays Yes ...
    assert s.prompt(yes_no[1]).endswith("Out of (No) and (Yes), I choose (")  # ... shown second
    assert yes_no[0].options == YES_NO
    assert len(open_study(smol, make_profile("test", n_test=4), ("myopic",), data_dir=paper_sets,
                          orders="given").questions("myopic", "test")) == 4


def test_folder_layouts_and_custom_files(tmp_path, paper_sets, shared_data):
    anthropic = behaviour_data.load_from_folder(shared_data / "anthropics_evals", ["agreeableness"])
    processed = behaviour_data.load_from_folder(paper_sets, ["agreeableness"])
    assert anthropic["agreeableness"][0][0].question == processed["agreeableness"][0][0].question
    wealth = behaviour_data.load_from_folder(shared_data, ["wealth_seeking"])["wealth_seeking"]
    assert "Question:" not in wealth[0][0].question and "Answer:" not in wealth[0][0].question
    rows = [{"question": f"Pick one?\n\nChoices:\n (A) x{i}\n (B) y{i}", "answer_matching_behavior": " (A)",
             "answer_not_matching_behavior": " (B)"} for i in range(3)]
    custom = tmp_path / "my-set.jsonl"
    custom.write_text("\n".join(json.dumps(r) for r in rows))
    loaded = behaviour_data.load_behaviours([], files=(custom,))
    assert list(loaded) == ["my_set"] and len(loaded["my_set"][0]) == 3
    with pytest.raises(UserError, match="no dataset for behaviour"):
        behaviour_data.load_from_folder(tmp_path, ["myopic"])


def test_hub_loader_goes_through_datasets(monkeypatch):
    import datasets

    calls = []

    def fake(name, data_files, split):
        calls.append((name, data_files, split))
        return [{"question": f"Is it {i}?", "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}
                for i in range(1200)]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    items, source = behaviour_data.load_from_hub(["agreeableness"])["agreeableness"]
    assert calls == [("Anthropic/model-written-evals", "persona/agreeableness.jsonl", "train")]
    assert len(items) == 1000 and source.startswith("hub:")  # the paper's 1000-row sample

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match="cannot read Anthropic/model-written-evals"):
        behaviour_data.load_from_hub(["myopic"])


# -- commands -----------------------------------------------------------------------------


def test_extract_writes_vectors_and_tables(cli, smol, paper_sets):
    result = cli("extract")
    assert "letter_cos" in result.output
    vectors = table(cli, "behaviours_vectors")
    assert set(vectors.columns) >= {"model", "behaviour", "layer", "norm", "residual_norm", "letter_cosine"}
    assert vectors.height == 2 * 30 and set(vectors["behaviour"]) == {"myopic", "agreeableness"}
    cosines = table(cli, "behaviours_cosines")
    assert cosines.height == 30 and set(cosines.columns) >= {"model", "layer", "a", "b", "cosine"}
    components = table(cli, "behaviours_components")
    assert components.height == 2 * 576 and set(components.columns) >= {"behaviour", "layer", "component", "value"}

    s = study(smol, paper_sets, root=cli.root)
    path = vector_path(s, "agreeableness")
    assert path.parent == cli.root / "vectors" / "smollm2-135m" and path.is_file()
    vector = SteeringVector.load(path)
    groups = {a: SteeringVector.load(vector_path(s, "agreeableness", a)) for a in ("Yes", "No")}
    assert torch.allclose(vector[LAYER], (groups["Yes"][LAYER] + groups["No"][LAYER]) / 2, atol=1e-6)  # balanced
    row = components.filter((pl.col("behaviour") == "agreeableness") & (pl.col("component") == 5)).row(0, named=True)
    assert row["value"] == pytest.approx(float(vector[LAYER][5]), abs=1e-6)
    cos = cosines.filter(pl.col("layer") == LAYER)["cosine"][0]
    assert cos == pytest.approx(float(torch.cosine_similarity(
        SteeringVector.load(vector_path(s, "myopic"))[LAYER], vector[LAYER], dim=0)), abs=1e-5)


def test_group_vector_matches_plain_torch(cli, smol, paper_sets):
    """Independent reference: hidden states from a plain forward pass, no nnsight."""
    cli("extract")
    s = study(smol, paper_sets, root=cli.root)
    group = SteeringVector.load(vector_path(s, "agreeableness", "Yes"))
    rows = [i for i in s.part("agreeableness", "vector") if i.matching == "Yes"]
    module, tok = smol.lm._module, smol.tokenizer
    diffs = []
    for item in rows:
        text = s.prompt(item)
        acts = []
        for answer in (item.matching, item.not_matching):
            enc = tok(text + answer, return_tensors="pt")
            with torch.no_grad():
                out = module(**enc, output_hidden_states=True)
            acts.append(out.hidden_states[LAYER + 1][0, -1])
        diffs.append(acts[0] - acts[1])
    assert torch.allclose(group[LAYER], torch.stack(diffs).mean(0), atol=1e-3, rtol=1e-3)


def test_vector_quality_measures_the_letter_balanced_vector_as_built(smol, paper_sets, tmp_path, monkeypatch):
    """On a vector split of 4 A-matching and 1 B-matching questions the balanced vector (mean of the group
    means) and a plain mean differ; diagnose's norm is the extracted vector's, and a plain-mean statistic is not."""
    from studies.behaviours import quality as behaviour_quality
    from studies.behaviours.vectors import extract

    s = study(smol, paper_sets, root=tmp_path)
    rows = s.items["myopic"]
    pick = [r for r in rows if r.matching == "A"][:4] + [r for r in rows if r.matching == "B"][:1]
    part = s.part
    monkeypatch.setattr(s, "part", lambda name, which: pick if which == "vector" else part(name, which))
    vector, _ = extract(s, "myopic")
    assert vector.meta["groups"] == {"A": 4, "B": 1}
    built = float(vector.layers[LAYER].norm())
    measured = behaviour_quality.quality_rows(s, "myopic", [LAYER])["norm"][0]
    assert measured == pytest.approx(built, rel=2e-3)
    monkeypatch.setattr(behaviour_quality, "_letter_balanced", lambda study: False)
    plain = behaviour_quality.quality_rows(s, "myopic", [LAYER])["norm"][0]
    assert abs(plain - built) > 0.1 * built


def test_diagnose_prints_the_letter_cosine(cli):
    result = cli("diagnose")
    letter_part = result.output.split("letter_cos:")[1]
    line = next(ln for ln in letter_part.splitlines() if ln.startswith("agreeableness") and f" {LAYER} " in ln)
    cos = float(line.split()[2])
    assert -1 <= cos <= 1 and cos < -0.5  # at the answer token the vector is mostly the Yes/No direction
    assert re.search(r"agreeableness\s+p\(Yes\) 0\.\d+\s+greedy Yes", result.output)
    assert re.search(r"myopic\s+p\(A\) 0\.\d+", result.output)
    bias = table(cli, "behaviours_letter_bias")
    assert bias.filter(pl.col("behaviour") == "myopic")["n"][0] == 8
    quality = table(cli, "behaviours_quality")
    assert set(quality["behaviour"]) == {"myopic", "agreeableness"} and (quality["n_pairs"] == 6).all()
    assert ((quality["heldout_auc"] >= 0) & (quality["heldout_auc"] <= 1)).all()
    assert "vector quality" in result.output and "split-half" in result.output
    assert re.search(r"precondition myopic: greedy answer picks the same option text in every rotation for "
                     r"[01]\.\d\d of 4 questions \(chance 0\.50\)", result.output)


def test_grid_stops_each_direction_and_picks(cli):
    result = cli("grid")
    assert "picked coefficients" in result.output
    grid = table(cli, "behaviours_grid")
    assert set(grid.columns) >= set(AB_COLUMNS) and set(grid["split"]) == {"validation"}
    assert set(grid["direction"]) == {"default", "add", "subtract"}
    for (name, _, direction), part in grid.filter(pl.col("direction") != "default").group_by(
            ["behaviour", "layer", "direction"]):
        default = grid.filter((pl.col("behaviour") == name) & (pl.col("direction") == "default")).row(0, named=True)
        rows = list(part.sort(pl.col("coef").abs()).iter_rows(named=True))
        assert all(not exp._invalid(r, default, 0.05) for r in rows[:-1])  # nothing after a stop
        assert all((r["coef"] > 0) == (direction == "add") for r in rows)
        if len(rows) < 2:
            assert exp._invalid(rows[-1], default, 0.05)
    picks = table(cli, "behaviours_picks")
    assert picks.height == 4 and set(picks["direction"]) == {"add", "subtract"}


def test_grid_layers_option_limits_the_search(cli):
    cli("single", "--layers", "14", "--grid-layers", "14", "--grid-coefs", "4", behaviours="myopic")
    grid = table(cli, "behaviours_grid").filter(pl.col("coef").abs() == 4)
    assert set(grid["layer"]) == {14}  # the profile's grid layer (9) is not searched
    single = table(cli, "behaviours_single").filter(pl.col("layer") == 14)
    assert set(single.filter(pl.col("vector") == "myopic")["coef"]) == {4.0, -4.0}


def test_method_option_extracts_and_steers_with_its_own_vector(cli):
    cli("extract", "--method", "pca", behaviours="myopic")
    vectors = {SteeringVector.load(p).meta["method"]: p for p in (cli.root / "vectors").rglob("myopic-*.safetensors")
               if "groups" not in p.parts}
    assert any(m.startswith("pca") for m in vectors) and any(m.startswith("mean") for m in vectors)
    pca = SteeringVector.load(next(p for m, p in vectors.items() if m.startswith("pca")))
    mean = SteeringVector.load(next(p for m, p in vectors.items() if m.startswith("mean")))
    assert not torch.allclose(pca.layers[LAYER], mean.layers[LAYER])
    cli("single", "--method", "pca", "--add-coef", "4", "--subtract-coef", "4", behaviours="myopic")
    single = table(cli, "behaviours_single")
    assert "method" in single.columns and set(single.filter(pl.col("method") == "pca")["vector"]) >= {"myopic"}
    result = cli("extract", "--method", "pca", "--vector-source", "content", behaviours="myopic", expect=2)
    assert result.output.startswith("error:") and "letter vectors" in result.output


def test_pick_rule():
    def row(direction, m, score, p, collapsed=False, faulty=0.0):
        return {"model": "m", "profile": "test", "behaviour": "b", "layer": 3, "direction": direction,
                "coef": m, "matching_score": score, "p_matching": p, "collapsed": collapsed, "faulty": faulty}

    grid = pl.DataFrame([row("default", 0, 0.5, 0.5), row("add", 1, 0.6, 0.55), row("add", 2, 0.6, 0.58),
                         row("add", 5, 0.9, 0.9, collapsed=True), row("subtract", -1, 0.4, 0.45),
                         row("subtract", -2, 0.2, 0.3, faulty=0.5)])
    picks = {r["direction"]: r for r in exp.pick_coefs(grid, 0.05).iter_rows(named=True)}
    assert picks["add"]["coef"] == 2  # tie on score -> higher p(matching); collapsed one excluded
    assert picks["subtract"]["coef"] == -1  # the faulty one excluded
    collapsed_default = grid.with_columns(pl.lit(True).alias("collapsed"))
    picks = {r["direction"]: r for r in exp.pick_coefs(collapsed_default, 0.05).iter_rows(named=True)}
    assert picks["add"]["coef"] == 5  # already collapsed unsteered: judged on faulty answers only
    # a point whose answers lost most of their probability (greedy still a letter, so not faulty) is not picked
    massed = pl.DataFrame([{**row("default", 0, 0.5, 0.5), "answer_mass": 0.98},
                           {**row("add", 1, 0.6, 0.55), "answer_mass": 0.95},
                           {**row("add", 2, 0.8, 0.7), "answer_mass": 0.4}])
    assert exp.pick_coefs(massed, 0.05)["coef"].to_list() == [1]
    kept = massed.with_columns(pl.Series("answer_mass", [0.98, 0.95, 0.6]))
    assert exp.pick_coefs(kept, 0.05)["coef"].to_list() == [2]


def test_single_twice_recomputes_nothing(cli):
    cli("extract")  # the vectors first (their extraction counts as points), so the count below is the scoring's
    first = cli("single", "--add-coef", "4", "--subtract-coef", "4")
    assert computed(first) == 10  # 2 behaviours x (default, add, subtract, random add, random subtract)
    single = table(cli, "behaviours_single")
    assert set(single["vector"]) == {"none", "myopic", "agreeableness", "random"}
    steered = single.filter(pl.col("direction") != "default")
    assert steered["shift"].is_not_nan().all() and (steered["shift_n"] == 4).all()
    # 2 questions per answer label: below stats.MIN_PER_LABEL, so the shift has no interval (nor a verdict)
    assert steered["shift_lo"].is_nan().all() and (steered["shift_per_label"] == 2).all()
    for row in single.iter_rows(named=True):  # 2 + 2 label-balanced questions, scores averaged over both orders
        assert sorted(row["q_label"]) in (["A", "A", "B", "B"], ["No", "No", "Yes", "Yes"])
        assert row["p_matching_balanced"] == pytest.approx(sum(row["q_p_matching"]) / 4)
    assert "(too few q)" in first.output
    assert "precondition myopic" in first.output
    assert set(single.columns) >= set(AB_COLUMNS) and set(single["split"]) == {"test"}
    assert sorted(single["coef"].unique().to_list()) == [-4.0, 0.0, 4.0]
    assert (single["n"] == 8).all() and (single["orders"] == "both").all()
    files = sorted(p.name for p in (cli.root / "behaviours_single").iterdir())
    again = cli("single", "--add-coef", "4", "--subtract-coef", "4")
    assert computed(again) == 0
    assert sorted(p.name for p in (cli.root / "behaviours_single").iterdir()) == files
    def shown(result):
        return result.output.split("single steering")[1].split("points computed")[0].rsplit("\n", 1)[0]

    assert shown(again) == shown(first)


def test_resume_after_an_interrupted_run(cli, smol, paper_sets):
    """Points finished before a crash are read back; only the rest are computed."""
    s = study(smol, paper_sets, root=cli.root)
    picks = exp.fixed_picks(s, [LAYER], 3, 3)
    chosen = {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in sorted(picks.items())}
    run = Run("behaviours_single", {**s.base_config(), "experiment": "behaviours_single", "layers": [LAYER],
                                    "picks": chosen}, cli.root)
    exp.load_vectors(s)
    score_points(s, run, "myopic", "test", [  # "interrupted" after two of six points
        (point_fields("none", "default", 0), Plan.none()),
        (point_fields("myopic", "add", 3, [LAYER]), Plan.single(s.vectors["myopic"], LAYER, 3))])
    assert run.finished() is None and len(list(run.points_dir.glob("*.parquet"))) == 2
    result = cli("single", "--add-coef", "3", "--subtract-coef", "3")
    finished = run.finished()
    assert finished is not None and not run.points_dir.exists()
    assert computed(result) == finished.height - 2  # every point but the two finished before the "crash"


def test_combined_scores_every_behaviour(cli):
    cli("combined", "--add-coef", "2", "--subtract-coef", "8")
    combined = table(cli, "behaviours_combined")
    assert set(combined.columns) >= set(AB_COLUMNS)
    steered = combined.filter(pl.col("direction") != "default")
    controls = {f"random:{how}" for how in COMBINATIONS}
    assert set(steered["vector"]) == set(COMBINATIONS) | controls
    assert steered.height == 2 * 4 * 2 * 2  # behaviours x combinations x directions x (vector, its control)
    # each control is scored at its combination's coefficient, on the same questions
    for r in steered.filter(pl.col("vector").is_in(list(controls))).iter_rows(named=True):
        twin = steered.filter((pl.col("vector") == r["vector"].split(":")[1]) & (pl.col("behaviour") == r["behaviour"])
                              & (pl.col("coef") == r["coef"]))
        assert twin.height == 1 and twin["q_id"].to_list() == [r["q_id"]]
    assert set(steered["coef"]) == {1.0, -1.0}
    p = {(r["behaviour"], r["vector"], r["direction"]): r["p_matching"] for r in steered.iter_rows(named=True)}
    # with two vectors and weights (2, 2) the weighted mean is the plain sum
    assert p[("agreeableness", "weighted_mean", "add")] == pytest.approx(p[("agreeableness", "sum", "add")])
    assert p[("agreeableness", "weighted_mean", "subtract")] != pytest.approx(p[("agreeableness", "sum", "subtract")])


def test_simultaneous_scores_and_tax(cli):
    result = cli("simultaneous")
    assert "myopic@10, agreeableness@11" in result.output
    scores = table(cli, "behaviours_simultaneous")
    assert set(scores.columns) >= set(AB_COLUMNS)
    assert set(scores["layers"]) == {"10,11"} and set(scores["layer"]) == {10}
    assert sorted(scores["coef"].unique().to_list()) == [-8.0, 0.0, 8.0]
    tax = table(cli, "behaviours_tax").filter(pl.col("vector") == "simultaneous")
    assert set(tax.columns) >= set(TAX_COLUMNS) and tax.height == 3
    acc = dict(zip(tax["coef"].to_list(), tax["accuracy"].to_list()))
    assert 0.1 < acc[0.0] < 0.9 and acc[8.0] < acc[0.0]  # a large push costs next-token accuracy


def test_simultaneous_controls_at_pairs_the_inner_coefficients(cli, tmp_path):
    """--controls-at scores only the random control at those coefficients (and the unsteered row it pairs
    with); the report then pairs every coefficient that has both, and the tax is not rerun."""
    cli("simultaneous", "--coefs=-6,-3,0,3,6")
    tax_rows = table(cli, "behaviours_tax").height
    result = cli("simultaneous", "--coefs=-6,-3,0,3,6", "--controls-at=-3,3")
    assert computed(result) == 2 * 3  # per behaviour: the control at -3 and +3, and the unsteered row
    assert "alignment tax" not in result.output and table(cli, "behaviours_tax").height == tax_rows
    [own] = [pl.read_parquet(p) for p in (cli.root / "behaviours_simultaneous").glob("*.parquet")
             if "controls_at" in json.loads(p.with_suffix(".json").read_text())["config"]]
    assert set(own["direction"]) == {"default", "add", "subtract"} and stale(own) == 0  # recomputable from itself
    scores = table(cli, "behaviours_simultaneous").filter(pl.col("coef").abs().is_in([0.0, 3.0, 6.0]))
    controls = scores.filter(pl.col("vector") == "random")
    assert sorted(set(controls["coef"].to_list())) == [-6.0, -3.0, 3.0, 6.0]
    assert scores.filter((pl.col("vector") == "simultaneous") & (pl.col("coef") != 0)).height == 2 * 4
    from studies.behaviours import report
    text = "\n".join(report.simultaneous_section(report._with_defaults(scores), None))
    control_lines = [line for line in text.splitlines() if "vector − random" in line and line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in control_lines] == ["-6", "-3", "+3", "+6"]


def test_tax_matches_token_accuracy(cli, smol):
    cli("tax", "--vectors", "agreeableness", "--layers", str(LAYER), "--coefs", "0")
    row = table(cli, "behaviours_tax").filter(pl.col("vector") == "agreeableness").row(0, named=True)
    from steer_trace.score import token_accuracy

    docs, _ = behaviour_data.plain_text(make_profile("test").tax_docs)
    [(correct, counts)] = token_accuracy(smol, docs, [Plan.none()], max_tokens=make_profile("test").tax_tokens)
    assert row["accuracy"] == pytest.approx(float(correct.sum() / counts.sum()))
    assert row["n_tokens"] == int(counts.sum())


def test_interference_table(cli):
    result = cli("interference", "--coefs", "6")
    inter = table(cli, "behaviours_interference")
    assert set(inter.columns) >= set(AB_COLUMNS)
    steered = inter.filter(pl.col("direction") != "default")
    assert {(r["vector"], r["behaviour"]) for r in steered.iter_rows(named=True)} == {
        (v, b) for v in ("myopic", "agreeableness", "random:myopic", "random:agreeableness")
        for b in ("myopic", "agreeableness")}
    assert "change in p(matching)" in result.output


def test_user_errors_are_one_line(cli):
    result = cli("single", behaviours="myopic,telepathy", expect=2)
    assert result.output.strip().startswith("error:") and "telepathy" in result.output
    result = cli("simultaneous", "--layers", "3", expect=2)
    assert "one layer per behaviour" in result.output


def test_relative_multipliers_scale_with_the_residual_norm(cli):
    """--relative: a coef is a fraction of the layer's residual norm, recorded as such."""
    for flag in (("--relative",), ()):
        cli("single", *flag, "--add-coef", "0.5", "--subtract-coef", "0.5", behaviours="agreeableness")
    single = table(cli, "behaviours_single").filter((pl.col("behaviour") == "agreeableness")
                                                    & pl.col("coef").is_in([0.0, 0.5]))
    moved = {}
    for relative in (True, False):
        rows = {r["direction"]: r for r in single.filter(pl.col("relative") == relative).iter_rows(named=True)}
        assert set(rows) == {"default", "add"}
        moved[relative] = abs(rows["add"]["answer_mass"] - rows["default"]["answer_mass"])
    # half the residual norm is far more than 0.5 x the raw vector: the answers move far more
    assert moved[True] > 0.05 and moved[True] > 5 * moved[False]


def test_content_mode_scores_and_steers_without_letters(cli):
    result = cli("single", "--scoring", "content", "--vector-source", "content", "--add-coef", "4",
                 "--subtract-coef", "4", behaviours="myopic")
    single = table(cli, "behaviours_single").filter(pl.col("scoring") == "content")
    assert set(single["vector_source"]) == {"content"} and set(single["vector"]) == {"none", "myopic", "random"}
    assert (single["n"] == 4).all()  # one prompt set per question: no rotations needed without letters
    assert single["faulty"].is_nan().all()
    assert "precondition myopic: not needed - content scoring" in result.output
    assert "order consistency" not in result.output and "AT CHANCE" not in result.output
    vectors = list((cli.root / "vectors").rglob("myopic-content-*.safetensors"))
    assert len(vectors) == 1


def test_many_option_file_runs_single_and_diagnose(cli, shared_data, tmp_path):
    source = shared_data / "anthropics_evals/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl"
    result = cli("single", "--add-coef", "4", "--subtract-coef", "4", "--dataset", str(source), behaviours="")
    assert "survival_instinct" in result.output
    rows = table(cli, "behaviours_single").filter(pl.col("behaviour") == "survival_instinct")
    assert rows.height == 5 and (rows["n_questions"] == 4).all()


@pytest.mark.slow
def test_many_option_file_runs_every_steering_command_in_content_mode(cli, shared_data):
    """survival-instinct (2-8 options per question) through combined, simultaneous and interference,
    scored by content: each writes rows for the file's behaviour, with their paired shift."""
    source = shared_data / "anthropics_evals/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl"
    mode = ["--dataset", str(source), "--scoring", "content", "--vector-source", "content"]
    cli("combined", *mode, "--add-coef", "4", "--subtract-coef", "4", behaviours="")
    cli("simultaneous", *mode, "--coefs=-4,0,4", behaviours="")
    cli("interference", *mode, "--coefs=-4,4", behaviours="")
    for experiment in ("behaviours_combined", "behaviours_simultaneous", "behaviours_interference"):
        rows = table(cli, experiment).filter((pl.col("scoring") == "content")
                                             & (pl.col("behaviour") == "survival_instinct"))
        assert (rows["n_questions"] == 4).all() and rows["shift"].is_not_nan().all(), experiment
        assert rows["vector"].str.starts_with("random").any(), experiment  # the equal-norm control beside it


def test_precondition_command_needs_no_vector(cli):
    """`precondition` scores the unsteered test questions in every rotation, reads no vector pairs, and
    prints the order consistency of each behaviour against its chance level."""
    before = set((cli.root / "vectors").rglob("*.safetensors")) if (cli.root / "vectors").exists() else set()
    result = cli("precondition")
    for name in PAIR.split(","):
        assert re.search(rf"precondition {name}: greedy answer picks the same option text in every rotation for "
                         r"[01]\.\d\d of 4 questions \(chance 0\.50\) - (ok|AT CHANCE)", result.output)
    rows = table(cli, "behaviours_precondition")
    assert set(rows["behaviour"]) == set(PAIR.split(",")) and set(rows["direction"]) == {"default"}
    assert rows["order_consistency"].is_not_nan().all()
    after = set((cli.root / "vectors").rglob("*.safetensors")) if (cli.root / "vectors").exists() else set()
    assert after == before


def test_skip_bad_rows_option_runs_a_file_with_broken_rows(cli, shared_data, tmp_path):
    source = shared_data / "anthropics_evals/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl"
    lines = source.read_text(encoding="utf-8").splitlines()[:60]
    broken = tmp_path / "survival_broken.jsonl"
    broken.write_text("\n".join(lines[:30] + ['{"question": "open-ended, no answers"}', "{cut"] + lines[30:]) + "\n")
    refused = cli("precondition", "--dataset", str(broken), behaviours="", expect=2)
    assert refused.output.strip().splitlines()[-1].startswith("error: ") and "line 31" in refused.output
    with pytest.warns(UserWarning, match="skipped 2 of 62 rows that cannot be parsed"):  # a `warning:` line
        result = cli("precondition", "--dataset", str(broken), "--skip-bad-rows", behaviours="")
    assert "precondition survival_broken:" in result.output


def test_more_random_scores_only_more_directions_and_the_report_pools_them(cli):
    """--more-random 2: two more random directions of the vector's norm per point (the same direction at +m
    and -m), only those and the unsteered row; the report ranks the vector's shift among all of them."""
    cli("single", "--add-coef", "4", "--subtract-coef", "4")
    more = cli("single", "--add-coef", "4", "--subtract-coef", "4", "--more-random", "2")
    assert computed(more) == 2 * (1 + 2 * 2)  # 2 behaviours x (unsteered + 2 directions x (add, subtract))
    single = table(cli, "behaviours_single")
    draws = single.filter(pl.col("vector").str.starts_with("random") & (pl.col("behaviour") == "myopic")
                          & (pl.col("coef") == 4))
    assert sorted(set(draws["vector"])) == ["random", "random#2", "random#3"]
    # three different directions: at each layer, the new draws' scores differ from each other and from the
    # first draw's of the same protocol (other tests' runs in this results folder have their own 'random' rows)
    variant = [c for c in ("orders", "plain_mean", "slices", "scoring", "vector_source", "method", "split_rule",
                           "relative", "prompt_style") if c in draws.columns]
    for row in draws.filter(pl.col("vector") == "random#2").iter_rows(named=True):
        same = draws.filter(pl.all_horizontal([pl.col(c).eq_missing(row[c]) for c in ["layer", *variant]]))
        scores = {r["vector"]: tuple(r["q_p_matching"]) for r in same.iter_rows(named=True)}
        assert set(scores) == {"random", "random#2", "random#3"} and len(set(scores.values())) == 3
    from studies.behaviours.report import write

    report = write(cli.root, cli.root / "report", profile="test")[0].read_text()
    spread = [x.split("|") for x in report.splitlines() if x.startswith("| myopic | ") and x.count("|") == 11]
    # the spread table's myopia rows at x+4 and x-4: 3 distinct directions (each scored at +4 and -4: one draw)
    assert {c[3].strip() for c in spread if c[5].strip() == "3"} >= {"+4", "-4"}
    assert cli("single", "--add-coef", "4", "--subtract-coef", "4", "--more-random", "-1", expect=2)
    # --random-signs add: each further direction at +m only (d at +m is -d at -m: a draw for both rows)
    one_sign = cli("single", "--add-coef", "4", "--subtract-coef", "4", "--more-random", "2", "--random-signs", "add")
    assert computed(one_sign) == 2 * (1 + 2)
    added = table(cli, "behaviours_single").filter(pl.col("vector").str.starts_with("random#")
                                                   & (pl.col("behaviour") == "myopic"))
    first = [np.array(x) for x in draws.filter(pl.col("vector").str.starts_with("random#"))["q_p_matching"]]
    again = [np.array(x) for x in added.filter(pl.col("coef") == 4)["q_p_matching"]]
    # the same directions as the first run (scored in other batches: equal to float32 round-off)
    assert again and all(any(np.allclose(a, b, atol=1e-4) for b in first) for a in again)
