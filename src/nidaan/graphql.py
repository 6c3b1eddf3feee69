"""The one GraphQL endpoint (``/graphql``): every module's operations in one schema.

Modules declare ``Query`` and ``Mutation`` types in their ``graphql.py`` (sync: the sync
protocol; files: the file operations); ``GRAPHQL_MODULES`` lists them and this module merges
them. Bearer-token auth is the REST API's; resolvers call the same services as REST.
"""

from __future__ import annotations

import importlib
from typing import Any

import strawberry
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.fastapi import GraphQLRouter
from strawberry.tools import merge_types

from nidaan.auth.dependencies import current_principal
from nidaan.auth.principal import Principal
from nidaan.deps import get_session
from nidaan.files.domain import LARGEST_FILE, MULTIPART_OVERHEAD
from nidaan.files.errors import FileTooLarge
from nidaan.kit.graphql_limits import limit_extensions

#: Modules with a ``graphql.py`` defining ``Query`` and ``Mutation``.
GRAPHQL_MODULES = ["nidaan.sync.graphql", "nidaan.files.graphql"]


async def get_context(
    request: Request,
    session: AsyncSession = Depends(get_session, scope="function"),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    # Uploads are spooled to disk by the form parser; refuse what cannot be allowed first.
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > LARGEST_FILE + MULTIPART_OVERHEAD:
        raise FileTooLarge("The upload is larger than any file allowed.", max_bytes=LARGEST_FILE)
    return {"request": request, "session": session, "principal": principal}


def build_schema() -> strawberry.Schema:
    modules = [importlib.import_module(path) for path in GRAPHQL_MODULES]
    query = merge_types("Query", tuple(m.Query for m in modules))
    mutation = merge_types("Mutation", tuple(m.Mutation for m in modules))
    # Depth, alias, field, token and cost limits before anything executes (issue 18 #6):
    # the merged schema must keep them, not only the sync module's own.
    return strawberry.Schema(query=query, mutation=mutation, extensions=limit_extensions())


schema = build_schema()


def sdl() -> str:
    return schema.as_str()


graphql_router: GraphQLRouter[Any, None] = GraphQLRouter(
    schema,
    context_getter=get_context,
    graphql_ide=None,
    allow_queries_via_get=False,
    multipart_uploads_enabled=True,
)
