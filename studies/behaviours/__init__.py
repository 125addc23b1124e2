"""Behaviours: the paper's steering of five A/B behaviours (myopia, wealth seeking, sycophancy, agreeableness,
anti-immigration), with random-direction controls, combinations, interference and the alignment tax.

Modules: config (profiles, the study's state), data (behaviour files), vectors / sources (extraction),
scoring (points), run (grid, single, combined, simultaneous, interference, tax), quality (precondition),
report, random_spread, plots, cli.
"""
from ..protocol import Study

STUDY = Study(
    name="behaviours",
    summary="The paper's behaviour experiments: extract, grid, single, combined, simultaneous, ...",
    cli="studies.behaviours.cli:group",
    report="studies.behaviours.report:write",
    figures="studies.behaviours.plots:build",
    pages="studies.behaviours.pages:pages",
)
