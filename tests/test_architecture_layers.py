"""The import direction of ARCHITECTURE.md, checked on the source (parsed with ``ast``, nothing imported).

- ``app.core`` is the domain: it imports no web framework, and neither the web layer (``app.api``,
  ``app.main``, ``app.__main__``) nor the settings (``app.core.config``): settings values reach it as
  arguments.
- ``training`` builds on ``app.core`` only: it never imports the web layer.
- ``client`` (``emotion-client``) talks to the service over HTTP only: it imports nothing of ``app`` or
  ``training`` and no TensorFlow, Keras or OpenCV (tests/client/test_imports.py checks the same at run time).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
WEB_FRAMEWORKS = ("fastapi", "fastapi_offline", "starlette", "uvicorn", "python_multipart", "multipart")
WEB_LAYER = ("app.api", "app.main", "app.__main__")
SETTINGS = ("app.core.config",)
SERVICE_SIDE = ("app", "training", "tensorflow", "keras", "cv2")


def module_name(path: Path) -> str:
    """``app/core/faces.py`` -> ``app.core.faces``; a package's ``__init__.py`` -> the package."""
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import anywhere in ``source`` (in functions too), relative ones
    resolved; ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be a module)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def is_within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def violations(folder: str, forbidden: tuple[str, ...], *, exempt: tuple[str, ...] = ()) -> list[str]:
    files = sorted((REPO_ROOT / folder).rglob("*.py"))
    assert files, f"no Python modules found under {folder}/: the check would pass without checking anything"
    found = []
    for path in files:
        module = module_name(path)
        if module in exempt:
            continue
        source = path.read_text(encoding="utf-8")
        for line, name in imported_names(source, module, is_package=path.name == "__init__.py"):
            if is_within(name, forbidden):
                found.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {name}")
    return sorted(set(found))


def test_the_core_imports_no_web_framework() -> None:
    assert violations("app/core", WEB_FRAMEWORKS) == []


def test_the_core_imports_neither_the_web_layer_nor_the_settings() -> None:
    assert violations("app/core", WEB_LAYER + SETTINGS, exempt=SETTINGS) == []


def test_training_imports_nothing_of_the_web_layer() -> None:
    assert violations("training", WEB_LAYER) == []


def test_the_client_imports_nothing_of_the_service_side() -> None:
    # OpenCV reads and writes video for `emotion-client video` only (client/video.py, imported lazily when
    # that command runs: tests/client/test_imports.py checks that importing the client loads no cv2).
    assert violations("client", SERVICE_SIDE, exempt=("client.video",)) == []
    assert [v for v in violations("client", SERVICE_SIDE) if not v.endswith(" imports cv2")] == []


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import starlette.requests", "app.core.x", "starlette.requests"),
        ("from fastapi import Request", "app.core.x", "fastapi"),
        ("def f():\n    from app.api import deps", "training.run", "app.api.deps"),
        ("from app import main", "training.run", "app.main"),
        ("from ..api import schemas", "app.core.x", "app.api.schemas"),
        ("from . import config", "app.core.x", "app.core.config"),
    ],
)
def test_the_check_sees_every_form_of_import(source: str, module: str, expected: str) -> None:
    names = [name for _, name in imported_names(source, module)]
    assert expected in names
    assert is_within(expected, WEB_FRAMEWORKS + WEB_LAYER + SETTINGS)
