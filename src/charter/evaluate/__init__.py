"""Evaluation: refusal detection, pairwise win rates and Elo, model comparison, report.html."""
