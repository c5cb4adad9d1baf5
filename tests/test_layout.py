"""The layout holds: shared/ is the domain only, and no package reaches into another's private names."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS_AND_TOOLS = {"portal", "customer_site", "jobs", "cli", "devtools"}
PACKAGES = ("shared", "portal", "customer_site", "jobs", "cli", "devtools")


def imports(path: Path):
    """(imported module, imported names) for every import statement in a file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, tuple(alias.name for alias in node.names)


def sources(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def test_the_domain_imports_neither_the_apps_nor_the_jobs_nor_the_tools():
    found = [(str(path.relative_to(ROOT)), module) for path in sources("shared")
             for module, _names in imports(path) if module.split(".")[0] in APPS_AND_TOOLS]
    assert found == []


def test_only_the_command_line_and_the_tests_import_the_tools():
    found = [(str(path.relative_to(ROOT)), module) for package in ("shared", "portal", "customer_site", "jobs")
             for path in sources(package) for module, _names in imports(path) if module.split(".")[0] == "devtools"]
    assert found == []


def test_no_module_imports_another_modules_private_names():
    found = [(str(path.relative_to(ROOT)), module, name) for package in PACKAGES for path in sources(package)
             for module, names in imports(path) if module.split(".")[0] in PACKAGES
             for name in names if name.startswith("_") and not name.startswith("__")]
    assert found == []


def test_the_layout_itself_is_checked():
    # The checks above read real files: an empty walk would pass them all.
    assert len(sources("shared")) > 50 and sources("devtools") and sources("cli")
