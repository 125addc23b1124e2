"""Behaviour figures from synthetic cached tables (schema of the behaviour experiments); no model is loaded."""
from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from steer_trace.cache import Run
from studies.behaviours import plots
from studies.common.plots import file_name, select_variant

BEHAVIOURS = ["myopic", "wealth_seeking", "sycophancy", "agreeableness", "anti_immigration"]
DEFAULT_P = dict(zip(BEHAVIOURS, [0.28, 0.50, 0.58, 0.92, 0.17]))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def ab_row(model, behaviour, vector, layer, direction, coef, p, *, n=300, orders="both", split="test",
           layers=None, collapsed=False, faulty=0.0, profile="test"):
    half = 1.96 * np.sqrt(p * (1 - p) / n) * 0.5
    shift = 0.0 if direction == "default" else p - DEFAULT_P.get(behaviour, 0.5)  # the paired shift, as stored
    return {"shift": shift, "shift_lo": shift - half, "shift_hi": shift + half,
        "model": model, "profile": profile, "prompt_style": "paper", "behaviour": behaviour, "vector": vector,
        "layer": layer, "layers": layers or str(layer), "direction": direction, "coef": float(coef),
        "orders": orders, "split": split, "n": n, "p_matching": p, "p_matching_lo": max(p - half, 0.0),
        "p_matching_hi": min(p + half, 1.0), "matching_score": min(max(p + 0.03, 0.0), 1.0), "faulty": faulty,
        "answer_mass": 0.9, "top_answer_share": 0.99 if collapsed else 0.6, "collapsed": bool(collapsed),
    }


def write(root, experiment, rows, **config):
    Run(experiment, {"synthetic": experiment, **config}, root).finish([pl.DataFrame(rows)])


def defaults(model, **kw):
    return [ab_row(model, b, "none", 15, "default", 0.0, DEFAULT_P[b], **kw) for b in BEHAVIOURS]


def write_synthetic(root, model="smollm2-135m", layers=(10, 15), what=None):
    """Every behaviour table of the schema, filled with plausible numbers for `model`."""
    rng = np.random.default_rng(0)
    what = set(what or ["grid", "single", "combined", "simultaneous", "interference", "tax", "components"])
    if "single" in what:
        rows = defaults(model)
        for layer in layers:
            for b in BEHAVIOURS:
                rows.append(ab_row(model, b, b, layer, "add", 2.0, min(DEFAULT_P[b] + 0.2, 0.99),
                                   collapsed=b == "myopic" and layer == 10))
                rows.append(ab_row(model, b, b, layer, "subtract", -2.0, max(DEFAULT_P[b] - 0.2, 0.01)))
        # a "given" order run of the same model: the figure must prefer "both"
        rows += [ab_row(model, b, b, layers[0], "add", 2.0, 0.01, orders="given") for b in BEHAVIOURS]
        write(root, "behaviours_single", rows, model=model)
    if "combined" in what:
        rows = defaults(model)
        for layer in layers:
            for how in ("sum", "mean", "weighted_sum", "weighted_mean"):
                for direction, sign in (("add", 1), ("subtract", -1)):
                    for b in BEHAVIOURS:
                        p = float(np.clip(DEFAULT_P[b] + sign * rng.uniform(0, 0.3), 0.01, 0.99))
                        rows.append(ab_row(model, b, how, layer, direction, sign * 1.0, p,
                                           collapsed=how == "weighted_sum", faulty=0.2 if how == "weighted_sum" else 0))
        write(root, "behaviours_combined", rows, model=model)
    if "simultaneous" in what:
        rows = []
        for s in np.round(np.arange(-2, 2.01, 0.1), 2):
            for i, b in enumerate(BEHAVIOURS):
                p = float(np.clip(DEFAULT_P[b] + 0.4 * np.tanh(2 * s) * np.exp(-(s ** 2) / 2), 0.01, 0.99))
                direction = "default" if s == 0 else ("add" if s > 0 else "subtract")
                rows.append(ab_row(model, b, "simultaneous", 11, direction, float(s), p, layers="11,12,13,14,15",
                                   collapsed=abs(s) > 1.5))
        write(root, "behaviours_simultaneous", rows, model=model)
    if "tax" in what:
        rows = [{"model": model, "profile": "test", "vector": "simultaneous", "layers": "11,12,13,14,15",
                 "coef": float(s), "accuracy": 0.66 - 0.03 * s * s, "accuracy_lo": 0.64 - 0.03 * s * s,
                 "accuracy_hi": 0.68 - 0.03 * s * s, "n_tokens": 5000} for s in np.round(np.arange(-2, 2.01, 0.1), 2)]
        write(root, "behaviours_tax", rows, model=model)
    if "interference" in what:
        rows = defaults(model)
        for v in BEHAVIOURS:
            for direction, sign in (("add", 1), ("subtract", -1)):
                for b in BEHAVIOURS:
                    shift = 0.25 if v == b else rng.normal(0, 0.05)
                    p = float(np.clip(DEFAULT_P[b] + sign * shift, 0.01, 0.99))
                    rows.append(ab_row(model, b, v, 15, direction, sign * 2.0, p))
        write(root, "behaviours_interference", rows, model=model)
    if "grid" in what:
        rows = [ab_row(model, b, "none", 0, "default", 0.0, DEFAULT_P[b], n=200, split="validation")
                for b in BEHAVIOURS]
        for b in BEHAVIOURS:
            for layer in (0, 5, 10, 15, 20, 25, 29):
                for m in (1, 2, 3, 5, 10, 20):
                    if m == 20 and layer > 20:
                        continue  # search stopped
                    for direction, sign in (("add", 1), ("subtract", -1)):
                        p = float(np.clip(DEFAULT_P[b] + sign * 0.03 * m, 0.01, 0.99))
                        rows.append(ab_row(model, b, b, layer, direction, sign * m, p, n=200, split="validation",
                                           collapsed=m >= 10))
        write(root, "behaviours_grid", rows, model=model)
    if "components" in what:
        rows = []
        for layer in layers:
            for b in BEHAVIOURS:
                values = rng.normal(0, 0.02 * (1 + layer / 10), 576)
                rows += [{"model": model, "behaviour": b, "layer": layer, "component": k, "value": float(x)}
                         for k, x in enumerate(values)]
        write(root, "behaviours_components", rows, model=model)


EXPECTED = ["single_steering_layer_10", "single_steering_layer_15", "single_steering_layers_10_15",
            "layer_10_all_results", "layer_15_all_results", "simultaneous_steering",
            "multi_steering_activation_distributions", "interference"] + [f"grid_search_{b}" for b in BEHAVIOURS]


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model or a vector file during figure building fails the test."""
    import steer_trace
    import steer_trace.models
    import steer_trace.vectors

    def forbidden(*args, **kwargs):
        raise AssertionError("figures must not load a model or a vector file")

    monkeypatch.setattr(steer_trace.models, "load_model", forbidden)
    monkeypatch.setattr(steer_trace, "load_model", forbidden)
    monkeypatch.setattr(steer_trace.vectors.SteeringVector, "load", forbidden)


def check_pngs(paths):
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC, path
        assert len(data) > 10_000, f"{path} looks empty ({len(data)} bytes)"


def test_every_figure_from_synthetic_tables(tmp_path, no_model):
    root, out = tmp_path / "results", tmp_path / "figures"
    write_synthetic(root)
    started = time.time()
    paths = plots.build(root, out)
    elapsed = time.time() - started
    assert sorted(p.name for p in paths) == sorted(f"{stem}.png" for stem in EXPECTED)
    assert all(p.parent == out for p in paths)
    check_pngs(paths)
    assert elapsed < 30, f"building took {elapsed:.1f}s"


def test_no_tables_no_figures(tmp_path, no_model):
    assert plots.build(tmp_path / "results", tmp_path / "figures") == []
    assert not (tmp_path / "figures").exists() or not any((tmp_path / "figures").iterdir())


def test_only_present_tables_give_figures(tmp_path, no_model):
    root = tmp_path / "results"
    write_synthetic(root, layers=(15,), what=["interference", "components"])
    paths = plots.build(root, tmp_path / "figures")
    assert sorted(p.name for p in paths) == ["interference.png", "multi_steering_activation_distributions.png"]
    check_pngs(paths)


def test_several_models_get_suffixed_names_and_the_default_model_plain_ones(tmp_path, no_model):
    root = tmp_path / "results"
    write_synthetic(root, model="smollm2-135m", layers=(15,), what=["single"])
    write_synthetic(root, model="Qwen/qwen2.5 coder", layers=(12,), what=["single", "components"])
    paths = plots.build(root, tmp_path / "figures")
    assert sorted(p.name for p in paths) == sorted([
        "single_steering_layer_15__smollm2-135m.png",
        "single_steering_layer_12__Qwen-qwen2.5-coder.png",
        "multi_steering_activation_distributions__Qwen-qwen2.5-coder.png",
        "single_steering_layer_15.png",  # the default model's figures also carry the plain name
    ])
    check_pngs(paths)
    plain, suffixed = (tmp_path / "figures" / n for n in ("single_steering_layer_15.png",
                                                            "single_steering_layer_15__smollm2-135m.png"))
    assert plain.read_bytes() == suffixed.read_bytes()


def test_file_name_rule():
    assert file_name("interference", "smollm2-135m", False) == "interference.png"
    assert file_name("interference", "org/model v1", True) == "interference__org-model-v1.png"


def test_select_variant_prefers_both_orders_and_test_split():
    table = pl.DataFrame({
        "orders": ["given", "both", "both", None], "split": ["test", "validation", "test", None],
        "profile": ["quick", "quick", "quick", "quick"], "p_matching": [0.1, 0.2, 0.3, 0.4],
    })
    rows, chosen = select_variant(table)
    assert chosen == {"orders": "both", "split": "test", "profile": "quick"}
    assert rows["p_matching"].to_list() == [0.3, 0.4]  # null variant values (shared defaults) are kept
    rows, chosen = select_variant(table, like={"orders": "given"})
    assert chosen["orders"] == "given" and rows["p_matching"].to_list() == [0.1, 0.4]


def test_defaults_prefer_the_layer_then_any():
    table = pl.DataFrame({
        "behaviour": ["a", "a", "b"], "direction": ["default"] * 3, "layer": [10, 15, 10],
        "p_matching": [0.1, 0.2, 0.3],
    })
    rows = plots.defaults_at(table, 15).sort("behaviour")
    assert rows["p_matching"].to_list() == [0.2, 0.3]


def _scored(behaviour, vector, direction, coef, scores, layer=15):
    n = len(scores)
    return {"model": "m", "profile": "test", "behaviour": behaviour, "vector": vector, "layer": layer,
            "direction": direction, "coef": float(coef), "split": "test", "scoring": "content",
            "n": n, "p_matching": float(np.mean(scores)), "q_id": list(range(n)), "q_label": ["A", "B"] * (n // 2),
            "q_p_matching": [float(x) for x in scores]}


def _interference(planted: float, weak: float, n_null: int, seed: int = 0) -> pl.DataFrame:
    """myopic's own vector moves myopia by `planted`; sycophancy's by `weak`; `n_null` other vectors nothing;
    every vector beside its random direction (random:<vector>), which moves nothing."""
    from studies.behaviours.scoring import refreshed_shifts

    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.6, 60)
    rows = [_scored("myopic", "none", "default", 0, base)]
    vectors = {"myopic": planted, "sycophancy": weak, **{f"null{k}": 0.0 for k in range(n_null)}}
    for v, shift in vectors.items():
        rows.append(_scored("myopic", v, "add", 1, base + shift + rng.normal(0, 0.03, 60)))
        rows.append(_scored("myopic", f"random:{v}", "add", 1, base))  # moves nothing: vector − random = shift
    return refreshed_shifts(pl.DataFrame(rows))


def test_interference_marks_only_what_survives_benjamini_hochberg():
    """Cells are the paired shifts; a star needs the shift and vector − its random direction clear of 0 after
    BH over every cell: the planted cell is starred, one at p ~ 0.01 among 40 null cells is not (it would be
    at an uncorrected p < 0.05), and a random direction's cell never is when it moves nothing."""
    rows = _interference(planted=0.3, weak=0.01, n_null=40)
    deltas = plots.interference_deltas(rows, plots.defaults_at(rows))
    clear = {r["vector"]: r["clear"] for r in deltas.iter_rows(named=True)}
    weak = deltas.filter(pl.col("vector") == "sycophancy").row(0, named=True)
    assert clear["myopic"] and weak["shift_p"] < 0.05 and not clear["sycophancy"]
    assert deltas.filter(pl.col("vector") == "myopic")["delta"][0] == pytest.approx(0.3, abs=0.02)
    assert sum(clear.values()) == 1
    alone = _interference(planted=0.3, weak=0.03, n_null=0)  # no family to correct over: the weak one stands
    deltas = plots.interference_deltas(alone, plots.defaults_at(alone))
    assert deltas.filter(pl.col("vector") == "sycophancy")["clear"][0]


def test_interference_draws_the_run_with_the_most_behaviours():
    """A paper-profile run of one file must not replace the five-behaviour grid of another variant."""
    five = [ab_row("m", b, v, 15, "add", 1, 0.5, profile="quick") for b in BEHAVIOURS for v in BEHAVIOURS]
    one = [ab_row("m", "survival", "survival", 15, "add", 1, 0.5, profile="paper")]
    rows = pl.DataFrame(five + one)
    assert select_variant(rows)[1]["profile"] == "paper"  # the plain choice
    kept, chosen = select_variant(plots.widest_runs(rows))
    assert chosen["profile"] == "quick" and kept["behaviour"].n_unique() == 5


def test_missing_required_column_skips_with_a_warning(tmp_path, no_model):
    root = tmp_path / "results"
    write(root, "behaviours_single", [{"model": "m", "behaviour": "myopic", "direction": "add"}])
    with pytest.warns(UserWarning, match="p_matching"):
        assert plots.build(root, tmp_path / "figures") == []


def test_figures_command_writes_the_behaviour_figures(tmp_path, no_model):
    from click.testing import CliRunner

    from tasks.cli import main

    root, out = tmp_path / "results", tmp_path / "figures"
    write_synthetic(root, layers=(15,), what=["single", "interference"])
    result = CliRunner().invoke(main, ["figures", "--results", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    assert (out / "single_steering_layer_15.png").stat().st_size > 10_000
    assert (out / "interference.png").stat().st_size > 10_000


def test_single_panel_draws_paired_shifts_and_the_random_control_at_its_own():
    """Each steered bar is the row's paired shift against unsteered (its height the stored shift, its error bar
    the paired interval); a paired random direction (same layer, coef) is a marker at its own shift; a bar
    without one gets none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = "smollm2-135m"
    rows = pl.DataFrame([ab_row(model, "myopic", "none", 14, "default", 0.0, 0.28),
                         ab_row(model, "myopic", "myopic", 14, "add", 1.0, 0.60),
                         ab_row(model, "myopic", "myopic", 14, "subtract", -1.0, 0.15),
                         ab_row(model, "wealth_seeking", "none", 14, "default", 0.0, 0.50),
                         ab_row(model, "wealth_seeking", "wealth_seeking", 14, "add", 1.0, 0.47)])
    controls = pl.DataFrame([ab_row(model, "myopic", "random", 14, "add", 1.0, 0.42),
                             ab_row(model, "myopic", "random", 14, "subtract", -1.0, 0.31),
                             ab_row(model, "myopic", "random", 14, "add", 2.0, 0.99)])  # another coef
    fig, ax = plt.subplots()
    plots._single_panel(ax, rows, 14, ["myopic", "wealth_seeking"], legend=True, controls=controls)
    heights = sorted(round(float(p.get_height()), 3) for p in ax.patches)
    assert heights == sorted([0.32, -0.13, -0.03])  # the shifts, not p(matching)
    marks = [line for line in ax.lines if line.get_gid() == "random-control" and line.get_marker() == "s"]
    assert sorted(round(float(line.get_ydata()[0]), 3) for line in marks) == [0.03, 0.14]
    assert "random direction, same norm" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert "paired" in ax.get_ylabel()
    plt.close(fig)


def test_the_component_histograms_show_one_extraction_not_several_pooled():
    """Three extraction runs of one model (64 pairs, 500 letter-balanced, 500 plain mean) used to be pooled into
    one histogram of 3 d values; the letter-balanced paper-size run is shown, with its label."""
    from studies.behaviours.plots import one_extraction

    d = 8

    def run(profile, balanced, split, value):
        return pl.DataFrame({"model": "m", "profile": profile, "behaviour": "myopic", "layer": 9,
                             "component": list(range(d)), "value": [value] * d, "balanced": balanced, "split": split})

    rows = pl.concat([run("quick", True, None, 1.0), run("paper", False, "paper", 2.0),
                      run("paper", True, "paper", 3.0)], how="diagonal_relaxed")
    picked, label = one_extraction(rows)
    assert picked.height == d and set(picked["value"]) == {3.0} and label == ", profile paper"
    picked, label = one_extraction(rows.filter(pl.col("value") != 3.0))
    assert set(picked["value"]) == {1.0} and label == ", profile quick"  # balanced before the paper's profile
