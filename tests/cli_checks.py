"""Shared assertion for CLI tests: a user mistake is one line and exit code 2."""


def one_error_line(result, *needles: str) -> str:
    """Exit code 2, exactly one `error:` line (the last on stderr), no traceback; returns the line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]
