"""The experiment commands (click). Thin: parse options, call the library, write results."""
