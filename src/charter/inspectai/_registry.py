"""What Inspect loads through charter's `inspect_ai` entry point: the provider and the tasks."""

from charter.inspectai.choice import hhh_mc, persona
from charter.inspectai.provider import CharterModelAPI
from charter.inspectai.tasks import harmful_compliance, over_refusal

__all__ = ["CharterModelAPI", "harmful_compliance", "hhh_mc", "over_refusal", "persona"]
