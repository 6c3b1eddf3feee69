"""A response that writes an already-built response model as JSON, skipping FastAPI's pass.

FastAPI validates what an endpoint returns against its ``response_model`` and then serialises
it; an endpoint whose model is built from typed database columns (``model_construct``) gains
nothing from the validation. Returning ``SchemaResponse(model)`` writes the same bytes
(pydantic-core's serialiser, as FastAPI uses) without it. Keep ``response_model=`` on the
route: it still describes the response in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response


class SchemaResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if not isinstance(content, BaseModel):
            raise TypeError("SchemaResponse writes a pydantic model")
        return content.__pydantic_serializer__.to_json(content, by_alias=True)
