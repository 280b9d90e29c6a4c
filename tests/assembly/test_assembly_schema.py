"""Schemathesis against the app's own OpenAPI schema: no generated request may cause a 500.

Requests carry a valid admin token and participant token, and path ids are often those of a real
conversation, so the fuzzing reaches the handlers' bodies instead of stopping at 401 and 404.
The responses must also match the schema the app publishes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from assembly_helpers import ADMIN_HEADERS, client, create, join
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from charter.assembly.security import Rate

_c = client(
    Path(tempfile.mkdtemp(prefix="charter-schemathesis-")),
    participant_rate=Rate(per_minute=10**6, burst=10**6),
    address_rate=Rate(per_minute=10**6, burst=10**6),
    join_rate=Rate(per_minute=10**6, burst=10**6),
)
CID = create(_c, ["Seed one", "Seed two", "Seed three"], strict_moderation=False)
HEADERS = {**ADMIN_HEADERS, **join(_c, CID)}
schema = schemathesis.openapi.from_asgi("/openapi.json", _c.app)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: schemathesis.Case[Any]) -> None:
    params = case.path_parameters or {}
    for name, real in (("id", CID), ("statement_id", 1)):
        value = params.get(name)
        if isinstance(value, int) and value % 2 == 0:
            params[name] = real
    case.call_and_validate(
        headers=HEADERS,
        checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
    )
