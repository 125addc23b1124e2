"""Skills: steering code-writing skills (text - Python vectors and their controls) and the top-1 next-token
accuracy they leave on text and on each programming language.

Modules: corpora (documents), run (profiles, extraction, evaluation sets, the point store, the sweep),
numerics, selectivity, report, plots, cli.
"""
from ..protocol import Study

STUDY = Study(
    name="skills",
    summary="Skill vectors (text - Python) and what they remove: extract, sweep, report.",
    cli="studies.skills.cli:group",
    report="studies.skills.report:write",
    figures="studies.skills.plots:build",
    pages="studies.skills.pages:pages",
)
