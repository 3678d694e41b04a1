"""health: HTTP and Prometheus gates against `responses`, and the pure parsing beside them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
import requests
import responses
from responses import matchers

from gitops_flags import egress, health
from gitops_flags.model import HttpHealthCheck, PrometheusHealthCheck

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PROM = "https://prometheus.example.com"
STATUS_URL = "https://status.example.com/checkout"
QUERY = 'sum(rate(http_errors_total{job="checkout"}[5m])) / sum(rate(http_requests_total[5m]))'


def vector(*values: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"job": f"checkout-{i}"}, "value": [1700000000.0, v]} for i, v in enumerate(values)]}}


def http(**fields: Any) -> HttpHealthCheck:
    return HttpHealthCheck.model_validate({"type": "http", "url": STATUS_URL, **fields})


def prom(**fields: Any) -> PrometheusHealthCheck:
    return PrometheusHealthCheck.model_validate(
        {"type": "prometheus", "server": PROM, "query": QUERY, "threshold": 0.01, **fields})


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


ALLOWED = egress.Rules(env=frozenset({"STATUS_TOKEN", "PROM_TOKEN"}))


def run(check: HttpHealthCheck | PrometheusHealthCheck, env: dict[str, str] | None = None,
        rules: egress.Rules = ALLOWED) -> tuple[str, str]:
    result = health.evaluate(check, env or {}, requests.Session(), at=AT, rules=rules)
    assert result.at == AT
    return result.outcome, result.detail


# --- pure ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "comparison", "threshold", "holds"), [
    (0.004, "<=", 0.01, True), (0.01, "<=", 0.01, True), (0.02, "<=", 0.01, False),
    (0.01, "<", 0.01, False), (5, ">", 4, True), (4, ">=", 4, True), (3, ">=", 4, False),
    (1, "==", 1.0, True),
])
def test_compare(value: float, comparison: health.Comparison, threshold: float, holds: bool) -> None:
    assert health.compare(value, comparison, threshold) is holds


def test_parse_prometheus_vector_scalar_and_errors() -> None:
    assert health.parse_prometheus_response(vector("0.004")) == (0.004, 1)
    assert health.parse_prometheus_response(vector("1", "2", "3")) == (1.0, 3)
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1700000000.0, "7"]}}
    assert health.parse_prometheus_response(scalar) == (7.0, 1)
    unreadable: list[Any] = [
        vector(),  # empty vector: no data
        vector("NaN"),
        {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": "0.1"}]}},
        {"status": "success"},
        ["not", "an", "object"],
    ]
    for body in unreadable:
        with pytest.raises(health.GateUnreadable):
            health.parse_prometheus_response(body)


def test_json_field_walks_objects_and_lists() -> None:
    body = {"data": {"checks": [{"error_rate": 0.2}]}}
    assert health.json_field(body, "data.checks.0.error_rate") == 0.2
    with pytest.raises(health.GateUnreadable, match=r"no field data\.missing"):
        health.json_field(body, "data.missing.x")
    with pytest.raises(health.GateUnreadable, match="not a number"):
        health.as_number(True, "ok")
    assert health.as_number("1.5", "x") == 1.5


# --- http ----------------------------------------------------------------------------------------------


def test_http_expected_status_passes(rsps: responses.RequestsMock) -> None:
    rsps.get(STATUS_URL, status=200, body="ok")
    assert run(http())[0] == "passed"


@pytest.mark.parametrize("status", [500, 400, 204])
def test_http_unexpected_status_fails(rsps: responses.RequestsMock, status: int) -> None:
    rsps.get(STATUS_URL, status=status)
    outcome, detail = run(http())
    assert outcome == "failed" and f"answered {status}, expected 200" in detail


@pytest.mark.parametrize("status", [401, 403, 404, 408, 429, 502, 503, 504])
def test_http_statuses_that_judge_the_request_not_the_service_are_inconclusive(
    rsps: responses.RequestsMock, status: int
) -> None:
    rsps.get(STATUS_URL, status=status)
    assert run(http())[0] == "inconclusive"


def test_http_json_field_compared_with_threshold(rsps: responses.RequestsMock) -> None:
    check = http(json_field="data.error_rate", comparison="<=", threshold=0.01)
    rsps.get(STATUS_URL, json={"data": {"error_rate": 0.004}})
    assert run(check) == ("passed", "data.error_rate 0.004 <= 0.01")
    rsps.replace(responses.GET, STATUS_URL, json={"data": {"error_rate": 0.2}})
    assert run(check) == ("failed", "data.error_rate 0.2 not <= 0.01")
    rsps.replace(responses.GET, STATUS_URL, json={"data": {}})
    assert run(check)[0] == "inconclusive"
    rsps.replace(responses.GET, STATUS_URL, body="<html>oops</html>")
    outcome, detail = run(check)
    assert outcome == "inconclusive" and "not JSON" in detail
    rsps.replace(responses.GET, STATUS_URL, status=500, body="Internal Server Error")
    outcome, detail = run(check)  # the number that judges the service is not in this answer
    assert outcome == "inconclusive" and "answered 500" in detail


def test_http_headers_come_from_environment_variables(rsps: responses.RequestsMock) -> None:
    check = http(headers_from_env={"Authorization": "STATUS_TOKEN"})
    rsps.get(STATUS_URL, status=200,
             match=[matchers.header_matcher({"Authorization": "Bearer s3cret"})])
    assert run(check, {"STATUS_TOKEN": "Bearer s3cret"})[0] == "passed"


def test_http_missing_credential_variable_is_inconclusive_and_names_it(rsps: responses.RequestsMock) -> None:
    check = http(headers_from_env={"Authorization": "STATUS_TOKEN"})
    outcome, detail = run(check, {})
    assert outcome == "inconclusive" and "STATUS_TOKEN" in detail
    assert len(rsps.calls) == 0  # nothing sent without the credential


def test_http_unreachable_is_inconclusive(rsps: responses.RequestsMock) -> None:
    rsps.get(STATUS_URL, body=requests.ConnectionError("refused"))
    outcome, detail = run(http())
    assert outcome == "inconclusive" and "unreachable" in detail
    rsps.replace(responses.GET, STATUS_URL, body=requests.ReadTimeout("slow"))
    outcome, detail = run(http(timeout_seconds=3))
    assert outcome == "inconclusive" and "no answer within 3s" in detail


def test_http_oversized_answer_is_inconclusive(rsps: responses.RequestsMock) -> None:
    rsps.get(STATUS_URL, body=b"x" * (health.MAX_BODY_BYTES + 10))
    outcome, detail = run(http())
    assert outcome == "inconclusive" and "larger than" in detail


def test_http_threshold_without_field_is_a_malformed_gate() -> None:
    for fields in ({"threshold": 1.0}, {"json_field": "a"}):
        with pytest.raises(pydantic.ValidationError):  # validate refuses it (issue 13)
            http(**fields)
        unchecked = HttpHealthCheck.model_construct(type="http", url=STATUS_URL, **fields)  # never validated
        assert run(unchecked)[0] == "inconclusive"


# --- prometheus ----------------------------------------------------------------------------------------


def test_prometheus_query_with_bearer_token(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{PROM}/api/v1/query", json=vector("0.004"), match=[
        matchers.query_param_matcher({"query": QUERY}),
        matchers.header_matcher({"Authorization": "Bearer prom-token"}),
    ])
    outcome, detail = run(prom(token_env="PROM_TOKEN"), {"PROM_TOKEN": "prom-token"})
    assert (outcome, detail) == ("passed", "query result 0.004 <= 0.01")
    assert "prom-token" not in detail


def test_prometheus_over_threshold_fails(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{PROM}/api/v1/query", json=vector("0.05"))
    assert run(prom()) == ("failed", "query result 0.05 not <= 0.01")


def test_prometheus_several_series_compares_the_first_and_says_so(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{PROM}/api/v1/query", json=vector("0.001", "0.9"))
    outcome, detail = run(prom())
    assert outcome == "passed" and "first of 2 series" in detail


def test_prometheus_server_with_a_path_prefix(rsps: responses.RequestsMock) -> None:
    rsps.get("https://mon.example.com/prometheus/api/v1/query", json=vector("0"))
    assert run(prom(server="https://mon.example.com/prometheus/"))[0] == "passed"


@pytest.mark.parametrize(("status", "body"), [
    (200, vector()),
    (200, vector("")),
    (400, {"status": "error", "errorType": "bad_data", "error": "1:5: parse error"}),
    (503, {"status": "error", "errorType": "timeout", "error": "query timed out"}),
    (502, {"message": "bad gateway"}),
])
def test_prometheus_unreadable_answers_are_inconclusive(
    rsps: responses.RequestsMock, status: int, body: dict[str, Any]
) -> None:
    rsps.get(f"{PROM}/api/v1/query", json=body, status=status)
    assert run(prom())[0] == "inconclusive"


def test_prometheus_timeout_and_missing_token(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{PROM}/api/v1/query", body=requests.ConnectTimeout("slow"))
    assert run(prom())[0] == "inconclusive"
    outcome, detail = run(prom(token_env="PROM_TOKEN"), {})
    assert outcome == "inconclusive" and "PROM_TOKEN" in detail


def unchecked(check: HttpHealthCheck | PrometheusHealthCheck, **fields: Any) -> Any:
    """A gate as it would be if the model's checks were bypassed (the models refuse inline credentials;
    health.py refuses them again before any request, as a second line)."""
    return check.model_copy(update=fields)


def test_the_models_refuse_inline_credentials() -> None:
    for bad in (lambda: http(headers_from_env={"Authorization": "Bearer s3cret-value"}),
                lambda: http(url="https://gate:s3cret@status.example.com/checkout"),
                lambda: prom(token_env="eyJhbGciOi.s3cret")):
        with pytest.raises(ValueError, match="should match pattern"):
            bad()


def test_inline_credentials_are_never_sent_nor_shown(rsps: responses.RequestsMock) -> None:
    inline_header = unchecked(http(), headers_from_env={"Authorization": "Bearer s3cret-value"})
    outcome, detail = run(inline_header, {"Bearer s3cret-value": "x"})
    assert outcome == "inconclusive" and "does not name an environment variable" in detail
    assert "s3cret" not in detail
    in_url = unchecked(http(), url="https://gate:s3cret@status.example.com/checkout")
    outcome, detail = run(in_url)
    assert outcome == "inconclusive" and "password in the URL" in detail and "s3cret" not in detail
    outcome, detail = run(unchecked(prom(), token_env="eyJhbGciOi.s3cret"), {"eyJhbGciOi.s3cret": "x"})
    assert outcome == "inconclusive" and "token_env does not name" in detail and "s3cret" not in detail
    assert len(rsps.calls) == 0


def test_details_leave_out_the_query_string(rsps: responses.RequestsMock) -> None:
    url = "https://status.example.com/checkout?api_key=s3cret"
    rsps.get(url, status=500)
    outcome, detail = run(http(url=url))
    assert (outcome, detail) == ("failed", f"GET {STATUS_URL} answered 500, expected 200")
