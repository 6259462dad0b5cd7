"""schemathesis against /openapi.json (the app in-process): whatever it sends, no 5xx, and every
answer matches the schema the server publishes (status code, content type and body)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.fixtures.servers import Live
from tests.helpers import text_message

pytestmark = pytest.mark.slow

# An opaque cursor or an unknown id is schema-valid and still refused (422/404): the checks are
# the ones the issues name (no 5xx, only documented statuses, answers as documented, a 405
# that lists every method of the path in `Allow`), not "every schema-valid request succeeds".
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    allow_header_conformance,
    unsupported_method,
]
EXAMPLES = 30  # per operation: 30-50 s on a loaded 2-core machine


def test_the_api_never_fails_and_matches_its_schema(live: Live) -> None:
    svc, me = live.service, live.alice.id
    session = svc.create(me, title="schema")
    svc.append(me, session.id, [text_message("user", "hello"), text_message("assistant", "hi")])
    svc.share(me, session.id)
    svc.add_repo(me, "https://git.example.com/team/widgets.git")
    svc.add_environment(me, "ci", secrets={"API_KEY": "a-secret-value"})
    svc.start_run(me, "schema", repo="widgets", environment="ci")
    schema = schemathesis.openapi.from_asgi("/openapi.json", live.app)
    headers = {"Authorization": f"Bearer {live.alice.token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call(headers=headers, timeout=30)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert failures == []
