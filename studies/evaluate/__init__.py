"""`steer-trace evaluate`: does steering work on this model for this behaviour, at which layer and
strength, at what cost, and better than prompting? One command, one report (report.md / report.html)."""

from studies.protocol import Study

STUDY = Study(
    name="evaluate",
    summary="Does steering work on this model for this behaviour? One report: layer/coef, random "
            "directions, prompting, per-question steerability, side effects.",
    cli="studies.evaluate.cli:command",
    report="studies.evaluate.report:rebuild",
    pages="studies.evaluate.report:pages",
)
