"""Collective constitutions: public statements and votes → groups and consensus → principles.

The pipeline, one module per stage: `votes` (reading and validation at the edge), `ingestion`
(one `Conversation` from an export or a folder), `matrix` (sparse vote matrix, participant
filter), `projection` (PCA with sparsity-aware scaling),
`clustering` (k-means by silhouette), `stats` (Polis's statistics, GIC, selection), `analysis`
(the pure pipeline and its outputs), `report` (opinion map, HTML), `draft` (statements →
principles with provenance), `embeddings` (all-MiniLM-L6-v2 for merging near-duplicates) and
`bench` (synthetic scale benchmark against red-dwarf). Heavy libraries (scikit-learn,
matplotlib, sentence-transformers, red-dwarf) are imported inside the functions that need them.
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
from charter.collective.draft import DraftConfig, draft_constitution, write_constitution
from charter.collective.ingestion import ingest, read_conversation, write_conversation
from charter.collective.votes import Conversation, Statement

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
