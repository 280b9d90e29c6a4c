"""What Inspect loads through charter's `inspect_ai` entry point: the provider and the tasks."""

from charter.inspectai.provider import CharterModelAPI
from charter.inspectai.tasks import harmful_compliance, over_refusal

__all__ = ["CharterModelAPI", "harmful_compliance", "over_refusal"]
