"""Schemathesis against /api/v1/openapi.json: whatever the generated requests (valid or not),
the API never answers with a server error, and every answer matches the published schema
(status code, content type, body). Runs against the app in process, on the test database.
A schema-valid request may still be refused with a 400 naming the field (a website that is not
http(s), a reserved name): the schema cannot say everything the validation checks, so the check
that every schema-valid request is accepted is left out.

The operations are driven through Hypothesis directly (schemathesis's pytest plugin does not
support pytest 9 yet)."""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ..conftest import ARTICLE

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def operations(app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    # A body too large for MAX_CONTENT_LENGTH is refused with 413, as the contract and the
    # schema say; schemathesis's own list of statuses that count as a refusal lacks it.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return {op.ok().label: op.ok() for op in schema.get_all_operations()}


@pytest.fixture
def api(app, site):
    app.config["RATELIMIT_ENABLED"] = False
    return operations(app)


def test_schema_describes_both_operations(api):
    assert set(api) == {"GET /threads", "POST /comments"}


@pytest.mark.parametrize("label", ["GET /threads", "POST /comments"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_answers_every_request_within_its_schema(api, label, mode):
    @FUZZ
    @given(case=api[label].as_strategy(generation_mode=mode))
    def check(case):
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()


@pytest.mark.parametrize("label", ["GET /threads", "POST /comments"])
def test_api_answers_requests_for_a_real_site_within_its_schema(api, site, label):
    """The same, with the real site key and article, so requests get past the site lookup."""
    @FUZZ
    @given(case=api[label].as_strategy(), real_url=st.booleans())
    def check(case, real_url):
        if isinstance(case.body, dict):
            case.body.update(site=site.key, **({"url": ARTICLE} if real_url else {}))
        if isinstance(case.query, dict):
            case.query.update(site=site.key, **({"url": ARTICLE} if real_url else {}))
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()
