"""Collective constitutions: public statements and votes → groups and consensus → principles.

The pipeline, one module per stage: `conversation` (the records: statements, votes, ingest
report), `votes` and `parsing` (reading and validation at the edge), `ingestion` (one
`Conversation` from an export or a folder), `matrix` (sparse vote matrix, participant filter),
`projection` (PCA with sparsity-aware scaling), `clustering` (k-means by silhouette), `stats`
(Polis's statistics, GIC, selection), `analysis` (the pure pipeline and its outputs), `report`
(opinion map, HTML) and `draft` (statements → principles with provenance; near-duplicates are
merged with `charter.backends.embeddings`). The synthetic scale benchmark against red-dwarf is
`charter.bench.collective`. Heavy libraries (scikit-learn, matplotlib, sentence-transformers)
are imported inside the functions that need them.
"""

from charter.collective.analysis import (
    Analysis,
    AnalysisConfig,
    AnalysisSummary,
    analyze,
    read_summary,
    summarize,
    write_analysis,
)
from charter.collective.conversation import Conversation, Statement
from charter.collective.draft import DraftConfig, draft_constitution, write_constitution
from charter.collective.ingestion import ingest, read_conversation, write_conversation

__all__ = [
    "Analysis",
    "AnalysisConfig",
    "AnalysisSummary",
    "Conversation",
    "DraftConfig",
    "Statement",
    "analyze",
    "draft_constitution",
    "ingest",
    "read_conversation",
    "read_summary",
    "summarize",
    "write_analysis",
    "write_constitution",
    "write_conversation",
]
