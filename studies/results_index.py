"""`results/INDEX.md`: every committed result table with its study, model, sizes, recipe, date and citations.

What it is for: a table under `results/` is named by a hash of its configuration; the index says what each one
is without opening its JSON sidecar, which recipe in `runs/` produced it, and which numbers of the generated
pages (README.md, docs/*.md) come from it. `steer-trace results` writes it; `--check` and the test compare.

Pattern: one row per table — `<experiment>/<key>.parquet` with its `<key>.json` sidecar, or a skills points run
`skills_points/<key>.config.json` with its `<key>.points/` folder — read from the sidecar only (no table is
loaded). The recipe and the date live in the sidecar's `run` entry (a points run: `<key>.run.json`, since its
config file is what its key hashes);
citations are the placeholders of docs/src/*.md whose names belong to the table (`cited_by`).

Gotchas: the reports (`behaviours_report/`, `skills_report/`) and the vector files (`vectors/`) are listed as
folders, not rows. Citation matching is by the placeholder's prefix (model, mode, section), so a row counts the
numbers its kind of table feeds, including ones another table of the same kind (e.g. a `--more-random` run)
also feeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from .pages import PLACEHOLDER, REPO, SRC

MODELS = {"smollm2-135m": "smollm2", "qwen2.5-coder-0.5b": "qwen", "qwen2.5-coder-1.5b": "qwen15"}  # as pages.MODELS
# a behaviours table -> the section of the page values it feeds (studies/behaviours/pages.py key scheme)
SECTIONS = {"behaviours_single": (".L", ".single.", ".table.single", ".table.spread"),
            "behaviours_simultaneous": (".simul.", ".table.simultaneous"), "behaviours_tax": (".simul.",),
            "behaviours_combined": (".comb.", ".table.combined"), "behaviours_interference": (".inter.",
                                                                                         ".table.interference")}


def _sidecars(root: Path) -> list[tuple[str, Path, dict]]:
    """(table name, sidecar path, sidecar) for every table, sorted."""
    out = []
    for side in sorted(root.glob("*/*.json")):
        if side.parent.name in ("behaviours_report", "skills_report", "vectors") or side.name.endswith(".run.json"):
            continue
        if side.name == "summary.json":  # a report folder (evaluate_*/): its summary says what and how
            summary = json.loads(side.read_text())
            run = {"recipe": summary["command"]} if summary.get("command") else {}
            out.append((f"{side.parent.name}/", side, {"config": {"model": summary.get("model"),
                                                                  "behaviour": summary.get("behaviour")}, "run": run}))
            continue
        meta = json.loads(side.read_text())
        name = side.name.removesuffix(".config.json").removesuffix(".json")
        run = side.with_name(f"{name}.run.json")  # a points run's config is its key: its run facts sit beside it
        if run.is_file():
            meta = {"config": meta, **json.loads(run.read_text())}
        out.append((f"{side.parent.name}/{name}", side, meta))
    return out


def _config(meta: dict) -> dict:
    return meta.get("config", meta)  # a points run's config file is the config itself


def _mode(config: dict) -> str:
    """The page's mode key (studies/behaviours/pages.py): letter / content / plain, + _seeded off the paper's split."""
    mode = "plain" if config.get("plain_mean") else config.get("scoring", "letter")
    return mode + ("" if config.get("split") == "paper" else "_seeded")


def _sizes(experiment: str, config: dict, meta: dict) -> str:
    if experiment == "skills_points":
        return "per document; see the sweeps"
    if experiment.startswith("evaluate"):
        return "report.md, tables/"
    if experiment.startswith("skills_sweep"):
        sizes = next(iter(config.get("sizes", {}).values()), None)  # [sweep, headline] scored tokens per domain
        return f"≥ {sizes[0]:,} tokens/domain, headline points ≥ {sizes[1]:,}" if sizes else "—"
    sizes = config.get("sizes")
    parts = []
    if isinstance(sizes, list) and len(sizes) == 3:
        parts.append(f"{sizes[0]} pairs / {sizes[2]} test q")
    if config.get("layers"):
        parts.append("layers " + ",".join(map(str, config["layers"])))
    if config.get("more_random"):
        parts.append(f"+{config['more_random']} random dirs")
    if meta.get("rows") is not None:
        parts.append(f"{meta['rows']} rows")
    return "; ".join(parts) or "—"


def _what(experiment: str, config: dict) -> str:
    if experiment.startswith("evaluate"):
        return str(config.get("behaviour"))
    if experiment == "interop_llamacpp":
        return f"{config.get('vector')} in llama.cpp vs ours"
    bits = [config.get("profile")]
    if experiment.startswith("behaviours"):
        if "data" in config and "survival_instinct" in config.get("data", {}):
            bits.append("survival-instinct")
        scoring = config.get("scoring", "letter") if experiment in SECTIONS or "scoring" in config else None
        bits += [f"{scoring} scoring" if scoring else None, "plain mean" if config.get("plain_mean") else None,
                 f"{config.get('orders')} orders" if config.get("orders") == "given" else None]
    if config.get("dtype") and config.get("dtype") != "float32":
        bits.append(config["dtype"])
    return ", ".join(b for b in bits if b)


def placeholders(repo: Path = REPO) -> dict[str, list[str]]:
    """page -> every placeholder name its template uses (with repeats)."""
    out = {}
    for src in sorted((repo / SRC).glob("*.md")):
        page = "README.md" if src.name == "README.md" else f"docs/{src.name}"
        out[page] = PLACEHOLDER.findall(src.read_text())
    return out


def cited_prefixes(experiment: str, config: dict, chosen_points: set[str], name: str) -> list[str]:
    """Placeholder prefixes whose values come from this table."""
    model = MODELS.get(config.get("model", ""), "")
    if not model:
        return []
    if experiment in SECTIONS:
        base = f"behaviours.{model}.{_mode(config)}"
        return [base + s for s in SECTIONS[experiment]]
    if experiment == "behaviours_precondition":
        return [f"behaviours.{model}{'_seeded' if 'survival_instinct' in config.get('data', {}) else ''}.pre."]
    if experiment == "behaviours_quality":
        return [f"behaviours.{model}.quality.{config.get('vector_source', 'letter')}."]
    if experiment == "gates_experiment":
        return ["gates."]
    if experiment == "interop_llamacpp":
        return [f"interop.{model}."]
    if experiment.startswith("evaluate"):
        return ["evaluate."]
    if experiment == "skills_points":
        key = name.split("/", 1)[1]
        if key in chosen_points:
            return [f"skills.{model}."]
        return [f"skills.{model}.numerics."] if config.get("dtype", "float32") == "float32" else []
    return []


def chosen_points_runs(root: Path) -> set[str]:
    """The points run `skills report` (and the docs) use per model: the one with the most rows."""
    best: dict[str, tuple[int, str]] = {}
    for config_file in sorted((root / "skills_points").glob("*.config.json")):
        key = config_file.name.removesuffix(".config.json")
        model = json.loads(config_file.read_text()).get("model")
        rows = sum(json.loads(s.read_text()).get("rows", 0) for s in (root / "skills_points" / f"{key}.points")
                   .glob("*.json"))
        if model not in best or rows > best[model][0]:
            best[model] = (rows, key)
    return {key for _, key in best.values()}


def index_text(root: Path | None = None, repo: Path = REPO) -> str:
    root = Path(root) if root else repo / "results"
    used = placeholders(repo)
    chosen = chosen_points_runs(root) if (root / "skills_points").is_dir() else set()
    lines = ["# Result tables", "",
             "Generated by `steer-trace results` from the tables' JSON sidecars; do not edit. One row per table "
             "(`<folder>/<key>.parquet`, or a skills points run `skills_points/<key>.points/`). *recipe*: the "
             "script in `runs/` that produced it (re-running it computes nothing new); *cited by*: how many "
             "numbers of each generated page come from tables of this kind.", "",
             "| table | study | model | what | sizes | recipe | date | cited by |", "|---|---|---|---|---|---|---|---|"]
    for name, _side, meta in _sidecars(root):
        experiment = name.split("/", 1)[0]
        config, run = _config(meta), meta.get("run", {})
        prefixes = cited_prefixes(experiment, config, chosen, name)
        cites = []
        for page, names in used.items():
            n = sum(1 for p in names if any(p.startswith(prefix) for prefix in prefixes))
            if n:
                cites.append(f"{page} ({n})")
        study, kind = ("evaluate", "report") if experiment.startswith("evaluate") else experiment.split("_", 1)
        recipe = f"`{run['recipe']}`" if run.get("recipe") else "—"
        if run.get("note"):
            recipe += f" ({run['note']})"
        lines.append(f"| `{name}` | {study} | {config.get('model', '—')} | {kind}: {_what(experiment, config)} | "
                     f"{_sizes(experiment, config, meta)} | {recipe} | {run.get('date', '—')} | "
                     f"{', '.join(cites) or '—'} |")
    unfinished = [f"`{p.parent.name}/{p.name}/` ({len(list(p.glob('*.parquet')))} points)"
                  for p in sorted(root.glob("behaviours_*/*.points")) if not p.with_suffix(".parquet").is_file()]
    if unfinished:
        lines += ["", "Unfinished runs (their points are cached, the run resumes from them; no table yet): "
                  + ", ".join(unfinished) + "."]
    lines += ["", "Folders: `behaviours_report/` and `skills_report/` hold the reports `steer-trace behaviours report` "
              "and `steer-trace skills report` write from these tables; `vectors/` holds the extracted steering "
              "vectors (safetensors with provenance)."]
    counts = {p: sum(1 for f in p.rglob("*") if f.is_file()) for p in sorted(root.iterdir()) if p.is_dir()}
    files = [f"`{p.name}/` ({n} file{'s' if n != 1 else ''})" for p, n in counts.items()
             if p.name not in ("behaviours_report", "skills_report", "vectors")
             and not any(p.glob("*.json"))]
    if files:
        lines.append("Other folders (files with their provenance inside, no sidecar): " + ", ".join(files) + ".")
    lines.append("")
    return "\n".join(lines)


def write(root: Path | None = None, repo: Path = REPO, check: bool = False) -> bool:
    """Write results/INDEX.md (check: write nothing); True when the file on disk differed."""
    root = Path(root) if root else repo / "results"
    text = index_text(root, repo)
    path = root / "INDEX.md"
    differs = not path.is_file() or path.read_text() != text
    if differs and not check:
        path.write_text(text)
    return differs
