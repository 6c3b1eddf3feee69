"""Limits on what one GraphQL document may ask for, checked before anything runs.

A GraphQL request is one HTTP request but may name thousands of fields (aliases repeat a
field any number of times), each a resolver and often a database query; a 2,000-alias
document once held the event loop for seconds. So a document is refused (a GraphQL
error, nothing executed) when it is too deep, uses too many aliases, has too many tokens
(checked while parsing), selects too many fields, or costs too much: every field costs 1
and every field that calls into a service (a root query or mutation field) costs
``ROOT_FIELD_COST``. The limits sit far above what Nidaan's own clients send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)

#: Weight of a root field: it runs a use case (database work), not just a lookup.
ROOT_FIELD_COST = 10


@dataclass(frozen=True)
class GraphQLLimits:
    max_depth: int = 8
    max_aliases: int = 10
    # Parsing and validating is CPU work on the event loop; 2,000 tokens keep it to
    # milliseconds (the sync mutation is about 120).
    max_tokens: int = 2_000
    max_fields: int = 300
    max_cost: int = 400


def document_cost(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> tuple[int, int]:
    """(fields selected, cost) of one operation, fragments expanded where they are used."""
    fields = 0
    cost = 0
    # (selection set, is it the operation's root, fragments being expanded on this path)
    pending: list[tuple[SelectionSetNode, bool, frozenset[str]]] = [
        (operation.selection_set, True, frozenset())
    ]
    while pending:
        selection_set, root, expanding = pending.pop()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                fields += 1
                cost += ROOT_FIELD_COST if root else 1
                if selection.selection_set is not None:
                    pending.append((selection.selection_set, False, expanding))
            elif isinstance(selection, InlineFragmentNode):
                pending.append((selection.selection_set, root, expanding))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is not None and name not in expanding:  # cycles: another rule
                    pending.append((fragment.selection_set, root, expanding | {name}))
    return fields, cost


def _cost_rule(limits: GraphQLLimits) -> type[ValidationRule]:
    class CostLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                fields, cost = document_cost(definition, fragments)
                if fields > limits.max_fields:
                    context.report_error(
                        GraphQLError(
                            f"The query selects {fields} fields; at most {limits.max_fields} "
                            "are allowed in one request.",
                            extensions={"code": "query_too_large"},
                        )
                    )
                elif cost > limits.max_cost:
                    context.report_error(
                        GraphQLError(
                            f"The query costs {cost}; at most {limits.max_cost} is allowed "
                            f"(each operation field costs {ROOT_FIELD_COST}, other fields 1). "
                            "Send fewer operations per request.",
                            extensions={"code": "query_too_costly"},
                        )
                    )

    return CostLimit


def limit_extensions(limits: GraphQLLimits | None = None) -> list[Any]:
    """Strawberry schema extensions enforcing ``limits``."""
    limits = limits or GraphQLLimits()
    return [
        MaxTokensLimiter(max_token_count=limits.max_tokens),
        QueryDepthLimiter(max_depth=limits.max_depth),
        MaxAliasesLimiter(max_alias_count=limits.max_aliases),
        AddValidationRules([_cost_rule(limits)]),
    ]
