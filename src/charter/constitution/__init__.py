"""Constitutions: the schema, builtin constitutions, loading, and importers of public formats."""

from charter.constitution.schema import (
    Constitution,
    CritiqueRevisionExample,
    FewShot,
    LabelExample,
    Principle,
    PrincipleText,
    Source,
)

__all__ = [
    "Constitution",
    "CritiqueRevisionExample",
    "FewShot",
    "LabelExample",
    "Principle",
    "PrincipleText",
    "Source",
]
