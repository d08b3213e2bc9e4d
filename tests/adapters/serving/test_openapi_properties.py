"""Property test of the scorer's HTTP API against its own OpenAPI schema (schemathesis).

Generated requests — valid ones and invalid ones — go to a real running scorer over HTTP; every
answer must be a documented status (never a 5xx) with the documented content type and body
schema. Bounded: a fixed number of examples per operation, derandomized.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from needs import missing

try:
    import schemathesis
except ImportError:  # a dev dependency
    missing("schemathesis not installed (pip install -e '.[dev]')", module=True)
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.serving import Scorer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 20


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, scorer_starter: Callable[..., Scorer]
) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("openapi")
    with open_registry(f"sqlite:///{folder / 'registry.sqlite'}") as registry:
        scorer = scorer_starter(registry, folder)
        yield schemathesis.openapi.from_url(f"{scorer.url}/openapi.json")
        scorer.stop()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_matches_the_schema(api_schema: Any, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/score", "/recommend", "/readyz", "/admin/promote"}
    if mode is GenerationMode.NEGATIVE:  # only a body can be made invalid here
        operations = [op for op in operations if len(op.body) > 0]
        assert {op.path for op in operations} >= {"/score", "/recommend", "/admin/rollback"}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        check()
