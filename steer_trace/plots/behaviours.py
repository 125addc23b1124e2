"""(being built)"""


def build(results_root, out_dir) -> list:
    """Write this family's figures from the cache; return the paths written."""
    return []
