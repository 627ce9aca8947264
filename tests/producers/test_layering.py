"""The gateway side reads the pipeline's ClickHouse through photostream.warehouse, never through the sinks."""

from __future__ import annotations

import ast
from pathlib import Path

import producers

PACKAGE = Path(producers.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_producers_module_imports_the_sinks():
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(n for n in imported_modules(path) if n.split(".")[0] == "sinks")
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_check_sees_an_import_of_the_sinks(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from sinks.writer import ClickHouseWriter\nimport sinks.s3\n", encoding="utf-8")
    assert imported_modules(module) == {"sinks.writer", "sinks.s3"}
