"""`steer-trace evaluate`: the guard, steerability, picks, verdicts and the report (fast, synthetic tables),
then planted effects on smollm2-135m (slow): a readout-direction vector is found, a random vector is not,
a planted anti-steerable subset is counted, and the guard refuses the real x+3.2 myopia collapse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from studies.evaluate import report, steerability
from studies.evaluate.guard import GuardBounds, distinct_ratio, judge
from studies.evaluate.run import Options, evaluate, pick, reads_options
from studies.evaluate.verdicts import verdicts

REPO = Path(__file__).resolve().parents[1]

# -- the guard --------------------------------------------------------------------------------------


def test_distinct_ratio_sees_a_collapsed_continuation():
    assert distinct_ratio([[1, 2, 3, 4]]) == 1.0
    assert distinct_ratio([[7] * 8]) == 1 / 8
    assert distinct_ratio([[1, 2, 1, 2, 1, 2], [5, 6, 7]]) == pytest.approx((2 / 6 + 1) / 2)


def test_guard_refuses_collapsed_accuracy_and_collapsed_text_and_keeps_a_working_model():
    base = {"accuracy": 0.40, "distinct": 0.9}
    bounds = GuardBounds(max_loss=0.1, min_distinct=0.6)
    assert judge({"accuracy": 0.39, "distinct": 0.85}, base, bounds)[0]
    ok, reason = judge({"accuracy": 0.02, "distinct": 0.85}, base, bounds)
    assert not ok and "accuracy" in reason
    ok, reason = judge({"accuracy": 0.39, "distinct": 0.1}, base, bounds)
    assert not ok and "collapsed" in reason


def _grid(rows):
    cols = ["layer", "coef", "direction", "shift", "shift_lo", "shift_hi", "guard_ok", "guard"]
    return pl.DataFrame([dict(zip(cols, r)) for r in rows])


def test_pick_never_takes_a_refused_point_and_says_a_refused_one_moved_further():
    grid = _grid([(-1, 0.0, "default", 0.0, 0.0, 0.0, True, "unsteered"),
                  (14, 0.8, "add", 0.10, 0.05, 0.15, True, "ok"),
                  (14, 3.2, "add", 0.57, 0.48, 0.65, False, "refused: greedy text collapsed"),
                  (14, -0.8, "subtract", -0.20, -0.3, -0.1, True, "ok"),
                  (14, -0.2, "subtract", -0.05, -0.1, 0.0, True, "ok")])
    picks = {r["direction"]: r for r in pick(grid).iter_rows(named=True)}
    assert picks["add"]["coef"] == 0.8 and "refused point moved validation further" in picks["add"]["reason"]
    assert picks["subtract"]["coef"] == -0.8  # the one that moved validation most, not the smallest
    none = pick(grid.with_columns(pl.lit(False).alias("guard_ok")))
    assert none.filter(pl.col("direction") == "add")["layer"][0] is None


def test_precondition_reads_options_only_clearly_above_chance():
    assert reads_options({"order_consistency": 0.9, "consistency_chance": 0.5, "n_questions": 40})[0]
    assert not reads_options({"order_consistency": 0.6, "consistency_chance": 0.5, "n_questions": 40})[0]
    assert not reads_options({"order_consistency": float("nan"), "consistency_chance": 0.5, "n_questions": 4})[0]


# -- steerability -------------------------------------------------------------------------------------


def test_slopes_recover_planted_slopes_and_count_the_anti_steerable_subset():
    rng = np.random.default_rng(0)
    coefs = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    true = np.r_[np.full(14, 2.0), np.full(6, -2.0)]  # 6 of 20 planted anti-steerable
    scores = np.outer(coefs, true) + rng.normal(0, 0.1, (5, 20))
    table = steerability.slopes(coefs, scores)
    assert np.allclose(table["slope"].to_numpy(), true, atol=0.3)
    assert table["anti_steerable"].to_list() == [False] * 14 + [True] * 6
    s = steerability.summary(table.with_columns(pl.Series("unsteered", rng.normal(size=20))))
    assert s["n_anti_steerable"] == 6 and s["anti_steerable_lo"] < 0.3 < s["anti_steerable_hi"]


def test_pure_noise_has_almost_no_question_outside_its_interval():
    rng = np.random.default_rng(1)
    table = steerability.slopes([-1, -0.5, 0, 0.5, 1], rng.normal(0, 1, (5, 400)))
    assert table["anti_steerable"].mean() < 0.06 and table["steerable"].mean() < 0.06


# -- verdicts and the report from synthetic tables ------------------------------------------------------


def _tables(vector_shift: float, random_shift: float, prompt_shift: float) -> dict:
    def comp(name, against, shift, half=0.03):
        return {"comparison": name, "against": against, "shift": shift, "shift_lo": shift - half,
                "shift_hi": shift + half, "shift_p": 0.01, "n_questions": 40, "mde": 0.04, "p_matching": 0.5,
                "p_matching_reference": 0.5}

    grid = pl.DataFrame([
        {"layer": -1, "coef": 0.0, "direction": "default", "p_matching": 0.5, "shift": 0.0, "shift_lo": 0.0,
         "shift_hi": 0.0, "shift_p": 1.0, "n_questions": 20, "accuracy": 0.4, "accuracy_lo": 0.38,
         "accuracy_hi": 0.42, "distinct": 0.9, "guard_ok": True, "guard": "unsteered", "greedy_text": "a b c"},
        {"layer": 9, "coef": 0.8, "direction": "add", "p_matching": 0.6, "shift": 0.1, "shift_lo": 0.05,
         "shift_hi": 0.15, "shift_p": 0.01, "n_questions": 20, "accuracy": 0.39, "accuracy_lo": 0.37,
         "accuracy_hi": 0.41, "distinct": 0.88, "guard_ok": True, "guard": "ok", "greedy_text": "a b d"},
        {"layer": 9, "coef": 3.2, "direction": "add", "p_matching": 0.9, "shift": 0.4, "shift_lo": 0.3,
         "shift_hi": 0.5, "shift_p": 0.01, "n_questions": 20, "accuracy": 0.01, "accuracy_lo": 0.0,
         "accuracy_hi": 0.02, "distinct": 0.1, "guard_ok": False, "guard": "refused: collapsed",
         "greedy_text": "nowhere now nowhere"},
        {"layer": 9, "coef": -0.8, "direction": "subtract", "p_matching": 0.4, "shift": -0.1, "shift_lo": -0.15,
         "shift_hi": -0.05, "shift_p": 0.01, "n_questions": 20, "accuracy": 0.39, "accuracy_lo": 0.37,
         "accuracy_hi": 0.41, "distinct": 0.88, "guard_ok": True, "guard": "ok", "greedy_text": "a b e"}])
    random = pl.DataFrame([{"direction": d, "random": f"random#{k}", "layer": 9, "coef": c,
                            "shift": s * random_shift * (k / 10), "shift_lo": -0.1, "shift_hi": 0.1}
                           for d, c, s in (("add", 0.8, 1), ("subtract", -0.8, -1)) for k in range(1, 11)])
    comparisons = pl.DataFrame([
        comp("steer add", "unsteered", vector_shift), comp("steer add - random", "mean", vector_shift - random_shift),
        comp("steer subtract", "unsteered", -vector_shift),
        comp("steer subtract - random", "mean", -(vector_shift - random_shift)),
        comp("prompt", "unsteered", prompt_shift), comp("steer add - prompt", "prompt", vector_shift - prompt_shift),
        comp("anti-prompt", "unsteered", -prompt_shift),
        comp("steer subtract - anti-prompt", "anti-prompt", -(vector_shift - prompt_shift))])
    rng = np.random.default_rng(0)
    st = steerability.slopes([-1, -0.5, 0, 0.5, 1], np.outer([-1, -0.5, 0, 0.5, 1], np.r_[np.ones(30), -np.ones(10)])
                             + rng.normal(0, 0.05, (5, 40)))
    st = st.with_columns(pl.Series("unsteered", rng.normal(size=40)), pl.lit(9).alias("layer"),
                         pl.lit("-0.8,-0.4,0,0.4,0.8").alias("coefs"))
    texts = {"prompts": [["The city", "A recipe"]] * 2, "texts": [[" grew", " is"], [" grew up", " was"]]}
    side = pl.DataFrame({"direction": ["default", "add"], "layer": [-1, 9], "coef": [0.0, 0.8],
                         "accuracy": [0.4, 0.39], "accuracy_lo": [0.38, 0.37], "accuracy_hi": [0.42, 0.41],
                         "n_tokens": [1000, 1000], "distinct": [0.9, 0.88], **texts})
    return {"grid": grid, "picks": pick(grid), "random": random, "comparisons": comparisons, "steerability": st,
            "side_effects": side}


def test_verdicts_name_steering_random_prompting_and_the_anti_steerable_share():
    lines = verdicts(_tables(vector_shift=0.3, random_shift=0.02, prompt_shift=0.05))
    assert lines[0].startswith("**Steers (add)**") and lines[1].startswith("**Steers (subtract)**")
    assert any("25% of questions anti-steerable" in line for line in lines)  # 10 of 40 planted
    assert any(line.startswith("**Steering beats prompting (add)") for line in lines)
    lines = verdicts(_tables(vector_shift=0.3, random_shift=0.3, prompt_shift=0.3))
    assert lines[0].startswith("**Steers no more than random directions (add)**")
    assert any(line.startswith("**Prompting does as well as steering (add)") for line in lines)
    lines = verdicts(_tables(vector_shift=0.0, random_shift=0.0, prompt_shift=0.6))
    assert lines[0].startswith("**Does not steer (add)**") and "detects is 0.040" in lines[0]
    assert any(line.startswith("**Prompting does better than steering (add)") for line in lines)


SUMMARY = {"model": "smollm2-135m", "behaviour": "myopic", "dataset": "x.jsonl", "n_rows": 100, "family": "letters",
           "options": "2", "orders": "both", "splits": {"vector": 60, "validation": 20, "test": 40},
           "scoring_reason": "content scoring: because", "coefs": [0.8, 3.2], "layers": [9],
           "guard": GuardBounds().describe(), "prompts": {"prompt": "Be <b>myopic</b>.", "anti_prompt": "Don't.",
                                                          "source": "given"},
           "vector": "test", "timings": {"total": 1.0, "search": 0.5}, "computed": 3, "command": "steer-trace evaluate"}


def _write_report(folder: Path) -> list[Path]:
    report.save_tables(_tables(0.3, 0.02, 0.05), SUMMARY, folder)
    return report.write(folder)


def test_report_md_and_html_say_the_same_and_the_html_is_self_contained(tmp_path):
    written = _write_report(tmp_path)
    md, page = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    assert md.startswith("# Does steering work? smollm2-135m on myopic\n\n- **Steers (add)**")
    for png in [p for p in written if p.suffix == ".png"]:
        assert f"]({png.name})" in md  # markdown links the files
    assert page.count("data:image/png;base64,") == len([p for p in written if p.suffix == ".png"]) == 4
    assert "src=\"http" not in page and "<script" not in page and "&lt;b&gt;myopic&lt;/b&gt;" in page
    assert set(json.loads((tmp_path / "summary.json").read_text())) >= {"model", "splits", "timings"}


def _chromium() -> str:
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        pytest.fail("the report's browser test needs Debian's chromium: `make browser` (apt-get install chromium)")
    return found


PROBE = """<script>
window.__errors = [];
const _error = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); _error(...a); };
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const widths = [...document.images].map(i => i.complete ? i.naturalWidth : 0);
  const out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({widths, errors: window.__errors, h2: document.querySelectorAll('h2').length,
                                    text: document.body.innerText.length});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.slow
def test_report_renders_in_headless_chromium_with_every_figure_loaded_and_no_console_error(tmp_path):
    import subprocess

    _write_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1))
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(args + ["--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    probe = dom.stdout.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0]
    found = json.loads(probe.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert len(found["widths"]) == 4 and all(w > 0 for w in found["widths"]), found
    assert found["errors"] == [] and found["h2"] >= 5 and found["text"] > 1000, found
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert not console, console
    shot = tmp_path / "shot.png"
    subprocess.run(args + [f"--screenshot={shot}", "--window-size=1000,1400", (tmp_path / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000  # the unprobed page itself rendered


@pytest.mark.slow
def test_a_broken_figure_is_caught_by_the_browser_probe(tmp_path):
    """The probe fails without a working page: a data URI that is no PNG gives naturalWidth 0."""
    import subprocess

    _write_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    broken = page.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1)
    (tmp_path / "broken.html").write_text(broken.replace("<head>", "<head>" + PROBE, 1))
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
            (tmp_path / "broken.html").as_uri()]
    dom = subprocess.run(args, capture_output=True, text=True, timeout=120)
    probe = dom.stdout.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0].replace("&quot;", '"')
    assert 0 in json.loads(probe)["widths"]


# -- planted effects on smollm2-135m ---------------------------------------------------------------------

SMALL = dict(n_vector=8, n_validation=8, n_test=16, n_random=10, tax_docs=2, tax_tokens=48, gen_tokens=10,
             text_questions=0)  # the text stage: tests/test_evaluate_text.py


def _yes_no_file(folder: Path, share_no: float, n: int = 48) -> Path:
    """Yes/No statements whose matching answer is Yes, except the first `share_no` of each block of ten."""
    rows = []
    for i in range(n):
        no = (i % 10) < round(share_no * 10)
        rows.append({"question": f"Is the following statement something you would say?\n\"Statement number {i} "
                                 f"is about {['apples', 'rivers', 'music', 'trains'][i % 4]} ({i * 7 % 13}).\"",
                     "answer_matching_behavior": " No" if no else " Yes",
                     "answer_not_matching_behavior": " Yes" if no else " No"})
    path = folder / f"planted_{int(share_no * 100)}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _readout_vector(model, folder: Path, random: bool = False) -> Path:
    """The readout direction W_U[Yes] - W_U[No] (tokens after 'I choose (') at the last layer: adding it raises
    p(Yes) by construction. `random`: an equal-norm random direction instead."""
    from steer_trace.score import answer_token_ids
    from steer_trace.vectors import SteeringVector

    ids = answer_token_ids(model.tokenizer, ["Yes", "No"])
    unembed = model.lm._module.get_output_embeddings().weight.detach().float()
    direction = unembed[ids[0]] - unembed[ids[1]]
    if random:
        direction = torch.randn(direction.numel(), generator=torch.Generator().manual_seed(5)) * direction.norm() / \
            np.sqrt(direction.numel())
    last = model.n_layers - 1
    path = folder / ("random.safetensors" if random else "readout.safetensors")
    SteeringVector({last: direction}, {"name": "planted", "method": "random" if random else "readout"}).save(path)
    return path


@pytest.mark.slow
def test_a_planted_readout_vector_steers_beyond_random_directions(smol, tmp_path):
    data = _yes_no_file(tmp_path, share_no=0.0)
    opts = Options(**SMALL, layers=(smol.n_layers - 1,), coefs=(0.05, 0.2), scoring="letter",
                   vector_file=str(_readout_vector(smol, tmp_path)))
    ev = evaluate(smol, str(data), opts, root=tmp_path / "results")
    lines = verdicts(ev.tables)
    assert lines[0].startswith("**Steers (add)**"), lines
    st = steerability.summary(ev.tables["steerability"])
    assert st["n_anti_steerable"] == 0 and st["steerable"] > 0.8 and st["mean_slope"] > 0, st


@pytest.mark.slow
def test_a_random_vector_is_not_called_steering(smol, tmp_path):
    data = _yes_no_file(tmp_path, share_no=0.0)
    opts = Options(**SMALL, layers=(smol.n_layers - 1,), coefs=(0.05, 0.2), scoring="letter",
                   vector_file=str(_readout_vector(smol, tmp_path, random=True)))
    ev = evaluate(smol, str(data), opts, root=tmp_path / "results")
    lines = verdicts(ev.tables)
    assert not any(line.startswith("**Steers (") for line in lines), lines


@pytest.mark.slow
def test_a_planted_anti_steerable_subset_is_counted(smol, tmp_path):
    """Half the test questions (balanced slices) match with No: the Yes readout moves them the wrong way."""
    data = _yes_no_file(tmp_path, share_no=0.3)
    opts = Options(**SMALL, layers=(smol.n_layers - 1,), coefs=(0.05, 0.2), scoring="letter",
                   vector_file=str(_readout_vector(smol, tmp_path)))
    ev = evaluate(smol, str(data), opts, root=tmp_path / "results")
    st = ev.tables["steerability"]
    anti = set(st.filter(pl.col("anti_steerable"))["q_id"].to_list())
    no_matching = set(st.filter(pl.col("q_label") == "No")["q_id"].to_list())
    assert no_matching and anti == no_matching, (anti, no_matching)
    assert any(f"{len(anti) / st.height:.0%} of questions anti-steerable" in line for line in verdicts(ev.tables))


@pytest.mark.slow
def test_the_guard_refuses_the_real_myopia_collapse_at_x3_2_layer_14(smol, tmp_path):
    """The issue's case: content scoring on smollm2 myopia, x+3.2 of the residual norm at layer 14 moves
    validation most, and the model writes 'nowhere now nowhere ...' there: refused, never picked."""
    opts = Options(n_vector=12, n_validation=8, n_test=8, layers=(14,), coefs=(0.2, 3.2), scoring="content",
                   tax_docs=2, tax_tokens=64, gen_tokens=12, text_questions=0)
    ev = evaluate(smol, str(REPO / "data" / "behaviours" / "myopic.jsonl"), opts, root=tmp_path / "results")
    grid = ev.tables["grid"]
    big = grid.filter(pl.col("coef") == 3.2).row(0, named=True)
    base = grid.filter(pl.col("direction") == "default").row(0, named=True)
    assert not big["guard_ok"] and big["accuracy"] < 0.5 * base["accuracy"], big
    assert big["shift"] > grid.filter(pl.col("coef") == 0.2)["shift"][0]  # it did move validation furthest
    picked = ev.tables["picks"].filter(pl.col("direction") == "add")["coef"][0]
    assert picked != 3.2


def test_the_study_is_registered_lightly_and_its_report_rebuilds_without_a_model(tmp_path):
    import subprocess
    import sys

    from studies.evaluate import STUDY
    from studies.evaluate.report import rebuild

    assert STUDY.name == "evaluate" and STUDY.cli == "studies.evaluate.cli:command"
    listing = subprocess.run([sys.executable, "-c", "import sys, studies.evaluate; "
                              "print(sorted(m for m in ('torch', 'nnsight', 'polars') if m in sys.modules))"],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert listing.stdout.strip() == "[]", listing.stdout + listing.stderr
    _write_report(tmp_path / "results" / "evaluate_x")
    written = rebuild(tmp_path / "results", tmp_path / "out")
    assert (tmp_path / "out" / "evaluate_x" / "report.html") in written


def test_an_anti_steerable_subset_that_is_one_answer_label_is_named_as_steerability_bias():
    from studies.evaluate.verdicts import answer_bias

    coefs = [-1, -0.5, 0, 0.5, 1]
    rng = np.random.default_rng(2)
    slopes = np.r_[np.full(6, -3.0), np.full(6, 3.0)]
    table = steerability.slopes(coefs, np.outer(coefs, slopes) + rng.normal(0, 0.05, (5, 12)))
    biased = table.with_columns(pl.Series("q_label", ["Yes"] * 6 + ["No"] * 6))
    assert "every anti-steerable question matches with 'Yes'" in answer_bias(biased)
    mixed = table.with_columns(pl.Series("q_label", ["Yes", "No"] * 6))
    assert "steerability bias" not in answer_bias(mixed) and "'No' 3 of 6" in answer_bias(mixed)


def test_a_second_report_of_the_same_model_and_behaviour_never_replaces_what_a_page_cites(tmp_path):
    from studies.evaluate.report import pages

    def committed(name: str, test: int) -> None:
        folder = tmp_path / "results" / name
        _write_report(folder)
        summary = json.loads((folder / "summary.json").read_text())
        splits = {**summary["splits"], "test": test}
        (folder / "summary.json").write_text(json.dumps({**summary, "scoring": "content", "splits": splits}))

    committed("evaluate_smollm2-135m_myopic", 40)
    first = pages(tmp_path / "results")["smollm2-135m.myopic.verdicts"]
    committed("evaluate_smollm2-135m_myopic-defaults", 12)
    values = pages(tmp_path / "results")
    assert values["smollm2-135m.myopic.verdicts"] == first == values["evaluate_smollm2-135m_myopic.verdicts"]
    assert "12 test questions" in values["evaluate_smollm2-135m_myopic-defaults.verdicts"] and "12 test" not in first
    assert values["evaluate_verdicts"].count("**smollm2-135m on myopic**") == 2
