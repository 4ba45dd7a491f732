"""Schemathesis against the service's own OpenAPI schema, on a real server: no input may cause a 5xx."""

import httpx
import pytest

from serve_helpers import LiveServer, OPTIONS
from lstmkit.serve import create_app, load_backend

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

EXAMPLES_PER_OPERATION_AND_MODE = 100


@pytest.mark.slow
def test_fuzzing_the_openapi_schema_finds_no_server_error(model_dir):
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    with LiveServer(create_app(load_backend(model_dir), OPTIONS)) as live:
        schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 7, [op.label for op in operations]
        calls, server_errors, statuses, per_operation = 0, [], {}, {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for operation in operations:
                @settings(max_examples=EXAMPLES_PER_OPERATION_AND_MODE, deadline=None, database=None,
                          derandomize=True, phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case):
                    nonlocal calls
                    response = case.call(base_url=live.url, timeout=30)
                    calls += 1
                    per_operation[operation.label] = per_operation.get(operation.label, 0) + 1
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code >= 500:
                        server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code} "
                                             f"{response.text[:200]}")

                try:
                    run()
                except Unsatisfiable:  # no invalid request exists for an operation without inputs (GET /healthz)
                    assert mode == GenerationMode.NEGATIVE
        print(f"schemathesis: {calls} examples over {len(operations)} operations, statuses {sorted(statuses.items())}, {per_operation}")
        assert calls >= 500
        assert not server_errors, "\n".join(server_errors[:20])
        assert httpx.get(f"{live.url}/healthz").status_code == 200
