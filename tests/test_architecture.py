"""The layering, read from the source with `ast` (nothing is imported).

- Only domain/persistence/ talks to the database libraries: no module outside it,
  migrations/, tests/, bench/ and tools/ imports sqlalchemy or asyncpg.
- The import graph between the top-level packages has no cycle; domain imports no Discord,
  HTTP or web framework and none of the entrypoint packages; cogs never import bot.

Every import counts: module level, inside functions, under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("domain", "bot", "cogs", "sandbox")
DATABASE_LIBRARIES = {"sqlalchemy", "asyncpg"}
# Where the database libraries may be imported besides domain/persistence/.
DATABASE_ALLOWED = {"migrations", "tests", "bench", "tools"}
PERSISTENCE = ("domain", "persistence")
FORBIDDEN = {
    "domain": {"discord", "aiohttp", "fastapi", "starlette", "uvicorn", "bot", "cogs",
               "sandbox"},
    "cogs": {"bot"},
}


@dataclass(frozen=True)
class Import:
    path: Path  # relative to the repository
    line: int
    module: str  # absolute dotted name

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def _package_of(path: Path) -> tuple[str, ...]:
    """The package a module's relative imports start from (an __init__'s is its own)."""
    return path.parts[:-1]


def _imports(path: Path) -> Iterator[Import]:
    relative = path.relative_to(ROOT)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
    package = _package_of(relative)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(relative, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from ..a import b, inside this package
                base = package[:len(package) - node.level + 1]
                module = ".".join((*base, node.module) if node.module else base)
            else:
                module = node.module or ""
            yield Import(relative, node.lineno, module)


def _all_imports(packages: tuple[str, ...] = PACKAGES) -> list[Import]:
    found: list[Import] = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            found.extend(_imports(path))
    return found


def _application_dirs() -> tuple[str, ...]:
    """Every top-level directory with Python in it, but the ones allowed the database
    libraries (and hidden ones: .venv, .git)."""
    return tuple(sorted(d.name for d in ROOT.iterdir()
                        if d.is_dir() and not d.name.startswith(".")
                        and d.name not in DATABASE_ALLOWED and any(d.rglob("*.py"))))


def _in_persistence(path: Path) -> bool:
    return path.parts[:len(PERSISTENCE)] == PERSISTENCE


def _graph(imports: list[Import]) -> dict[str, dict[str, list[Import]]]:
    """top-level package -> imported top-level name -> the imports that make the edge."""
    graph: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for imp in imports:
        source = imp.path.parts[0]
        if imp.top and imp.top != source:
            graph[source][imp.top].append(imp)
    return graph


def _describe(graph: dict[str, dict[str, list[Import]]]) -> str:
    lines = ["import graph between the packages (first import of each edge):"]
    for source in PACKAGES:
        targets = sorted(t for t in graph.get(source, {}) if t in PACKAGES)
        edges = ", ".join(f"{t} ({graph[source][t][0].path}:{graph[source][t][0].line})"
                          for t in targets)
        lines.append(f"  {source} -> {edges or '(none)'}")
    return "\n".join(lines)


def _cycles(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """Every elementary cycle among PACKAGES, each starting at its smallest name."""
    found: list[list[str]] = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, {})):
            if nxt not in PACKAGES:
                continue
            if nxt == start:
                found.append([*path, start])
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for start in sorted(PACKAGES):
        walk(start, start, [start])
    return found


def test_only_persistence_imports_the_database_libraries() -> None:
    assert set(PACKAGES) <= set(_application_dirs())
    top_level = [imp for path in sorted(ROOT.glob("*.py")) for imp in _imports(path)]
    offenders = [imp for imp in _all_imports(_application_dirs()) + top_level
                 if imp.top in DATABASE_LIBRARIES and not _in_persistence(imp.path)]
    if offenders:
        pytest.fail("only domain/persistence/ may import sqlalchemy or asyncpg; move the "
                    "SQL into a store:\n" + "\n".join(f"  {imp}" for imp in offenders),
                    pytrace=False)


def test_the_package_graph_has_no_cycle_and_keeps_its_layers() -> None:
    imports = _all_imports()
    graph = _graph(imports)
    problems = [f"  cycle: {' -> '.join(cycle)}" for cycle in _cycles(graph)]
    for source, forbidden in FORBIDDEN.items():
        for imp in imports:
            if imp.path.parts[0] == source and imp.top in forbidden:
                problems.append(f"  {source} must not import {imp.top}: {imp}")
    if problems:
        pytest.fail("\n".join(problems) + "\n" + _describe(graph), pytrace=False)


def test_the_scan_sees_the_imports() -> None:
    """Guards the two tests above against passing because they looked at nothing."""
    imports = _all_imports()
    assert any(imp.top == "sqlalchemy" and _in_persistence(imp.path) for imp in imports)
    assert any(imp.path.parts[0] == "bot" and imp.top == "domain" for imp in imports)
    relative = [imp for imp in imports if imp.path == Path("domain/persistence/ops.py")]
    assert any(imp.module == "domain.persistence.database" for imp in relative)


SERVICE_CLASSES = {"TransitionService", "RemediationService", "DeadLetterRecorder",
                   "GuildSettingsService", "DeadLetterReads"}
WIRING = Path("bot/wiring.py")


def test_services_are_built_only_by_the_wiring_function() -> None:
    """The bot, the API, the CLI, the demo, the tests and the bench get their services from
    bot.wiring.build_services: no other module constructs a service."""
    offenders: list[str] = []
    scanned = 0
    for top in (*PACKAGES, "tests", "bench", "tools"):
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT)
            scanned += 1
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = node.func.id if isinstance(node.func, ast.Name) else \
                    node.func.attr if isinstance(node.func, ast.Attribute) else None
                if name in SERVICE_CLASSES and relative != WIRING:
                    offenders.append(f"  {relative}:{node.lineno} builds {name}")
    assert scanned > 100
    if offenders:
        pytest.fail("build services with bot.wiring.build_services:\n" + "\n".join(offenders),
                    pytrace=False)
