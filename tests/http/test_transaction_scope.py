"""The request's transaction commits before the response leaves.

FastAPI's default for a dependency with ``yield`` runs its exit code *after* the response
is sent; for the session that would mean a client can act on a 201 whose transaction has
not committed yet (its next request then 404s), and a failed commit would go unreported.
Every ``Depends(get_session)`` must therefore say ``scope="function"``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nidaan

SOURCE = Path(nidaan.__file__).parent


def _session_dependencies() -> list[tuple[str, int, bool]]:
    found = []
    for path in SOURCE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "Depends"
                and node.args
                and getattr(node.args[0], "id", None) == "get_session"
            ):
                scoped = any(
                    k.arg == "scope" and getattr(k.value, "value", None) == "function"
                    for k in node.keywords
                )
                found.append((str(path.relative_to(SOURCE)), node.lineno, scoped))
    return found


def test_every_session_dependency_commits_before_the_response() -> None:
    dependencies = _session_dependencies()
    assert len(dependencies) > 20  # the scan sees the endpoints
    assert [(f, line) for f, line, scoped in dependencies if not scoped] == []
