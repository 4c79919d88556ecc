"""The data layer sits below the models: nothing under `rankvideo.data` imports `rankvideo.models`
(or the layers built on it). Imports are read from the source with `ast`, lazy ones inside
functions included, relative ones resolved against the importing module."""

from __future__ import annotations

import ast
from pathlib import Path

import rankvideo

PACKAGE = Path(rankvideo.__file__).resolve().parent
ABOVE_DATA = ("rankvideo.models", "rankvideo.modules", "rankvideo.stages")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (and `from X import Y` gives X and X.Y)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_the_checker_resolves_relative_imports(tmp_path):
    # the checker itself: a relative import two levels up resolves to the absolute name
    mods = imported_modules(PACKAGE / "modules" / "datamodules.py")
    assert "rankvideo.models.scoring" in mods and "rankvideo.data.clips" in mods


def test_nothing_under_data_imports_the_models():
    offending = {}
    for path in sorted((PACKAGE / "data").rglob("*.py")):
        bad = sorted(m for m in imported_modules(path) if m.startswith(ABOVE_DATA))
        if bad:
            offending[str(path.relative_to(PACKAGE))] = bad
    assert not offending, f"the data layer imports from above it: {offending}"
