"""Health gates: ask a service or Prometheus whether a rollout may go on.

`evaluate` sends one GET and returns a `GateResult`: `passed`, `failed` (the service answered, and the
answer is bad), or `inconclusive` (the gate could not be evaluated: unreachable, timed out, refused our
credentials, answered something we cannot read, or a credential variable is not set). Inconclusive
never advances a rollout and never rolls it back.

Credentials come only from environment variables that the flag file names (`headers_from_env`,
`token_env`); values never appear in a result's detail. The parsing and comparison are pure functions
beside the calls.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from .model import HttpHealthCheck, PrometheusHealthCheck
from .store.state import GateOutcome, GateResult

Comparison = Literal["<", "<=", ">", ">=", "=="]
MAX_BODY_BYTES = 1 << 20  # a health endpoint or an instant query answers in far less
DETAIL_LIMIT = 300
# Answers that say "this request cannot be judged" (our credentials, the URL, a rate limit) or "the
# service could not be reached" (a gateway or load balancer answering for it), not "the service is
# unhealthy". Any other unexpected status is a failure.
INCONCLUSIVE_STATUSES = frozenset({401, 403, 404, 405, 407, 408, 429, 502, 503, 504})


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GateUnreadable(Exception):
    """The answer cannot be evaluated (inconclusive)."""


# --- pure parts --------------------------------------------------------------------------------------


def compare(value: float, comparison: Comparison, threshold: float) -> bool:
    """`value <comparison> threshold`, e.g. error rate `<=` 0.01 holds for 0.004."""
    if comparison == "<":
        return value < threshold
    if comparison == "<=":
        return value <= threshold
    if comparison == ">":
        return value > threshold
    if comparison == ">=":
        return value >= threshold
    return value == threshold


def as_number(value: Any, what: str) -> float:
    """A finite number from JSON: a number, or a string holding one (Prometheus sends strings)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise GateUnreadable(f"{what} is {_show(value)}, not a number")
    try:
        number = float(value)
    except ValueError:
        raise GateUnreadable(f"{what} is {_show(value)}, not a number") from None
    if not math.isfinite(number):
        raise GateUnreadable(f"{what} is {_show(value)}, not a finite number")
    return number


def json_field(body: Any, path: str) -> Any:
    """The value at a dotted path (`data.error_rate`, `checks.0.value`: digits index lists)."""
    value = body
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise GateUnreadable(f"the JSON body has no field {'.'.join(walked)}")
    return value


def parse_prometheus_response(body: Any) -> tuple[float, int]:
    """The first value of an instant query's result and the number of series it returned.

    Accepts the HTTP API's documented shape: `{"status": "success", "data": {"resultType": "vector",
    "result": [{"metric": {...}, "value": [<time>, "<number>"]}]}}`, or `resultType` `scalar` with
    `result: [<time>, "<number>"]`. An error status, an empty vector, another result type or NaN raises
    GateUnreadable.
    """
    if not isinstance(body, dict):
        raise GateUnreadable("the answer is not a JSON object")
    if body.get("status") != "success":
        error = body.get("error") or body.get("errorType") or f"status {_show(body.get('status'))}"
        raise GateUnreadable(f"Prometheus answered an error: {_show(error)}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise GateUnreadable("the answer has no `data` object")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return as_number(_sample_value(result), "the scalar"), 1
    if kind != "vector":
        raise GateUnreadable(f"the query returned a {_show(kind)}; use an instant query returning one number")
    if not isinstance(result, list):
        raise GateUnreadable("the vector result is not a list")
    if not result:
        raise GateUnreadable("the query returned no data (an empty vector)")
    first = result[0]
    if not isinstance(first, dict):
        raise GateUnreadable("a vector sample is not an object")
    return as_number(_sample_value(first.get("value")), "the first sample"), len(result)


def _sample_value(sample: Any) -> Any:
    if not (isinstance(sample, list) and len(sample) == 2):
        raise GateUnreadable(f"a sample is {_show(sample)}, not [time, value]")
    return sample[1]


def _show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown_url(url: str) -> str:
    """The URL as details show it: without a query string or user info, which may carry a secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def inline_secret(url: str, variables: Mapping[str, str]) -> str | None:
    """Why the gate holds an inline credential (never evaluated then), or None. Secrets must come from
    environment variables: `variables` maps what the file names (a header, `token_env`) to a variable."""
    if urlsplit(url).password is not None:
        return f"{shown_url(url)} has a password in the URL; pass credentials with headers_from_env"
    for what, variable in sorted(variables.items()):
        if not ENV_NAME.match(variable):
            return (f"{what} does not name an environment variable (an inline value?); credentials "
                    "come only from environment variables: name the one that holds it")
    return None


def _result(outcome: GateOutcome, detail: str, at: datetime) -> GateResult:
    if len(detail) > DETAIL_LIMIT:
        detail = detail[: DETAIL_LIMIT - 1] + "…"
    return GateResult(at=at, outcome=outcome, detail=detail)


def _verdict(value: float, check: HttpHealthCheck | PrometheusHealthCheck, threshold: float, name: str,
             at: datetime, note: str = "") -> GateResult:
    holds = compare(value, check.comparison, threshold)
    relation = check.comparison if holds else f"not {check.comparison}"
    return _result("passed" if holds else "failed", f"{name} {value:g} {relation} {threshold:g}{note}", at)


# --- the calls ---------------------------------------------------------------------------------------


def evaluate(
    check: HttpHealthCheck | PrometheusHealthCheck,
    env: Mapping[str, str],
    session: requests.Session,
    *,
    at: datetime,
) -> GateResult:
    """Run one gate. `env` supplies the credential variables; `at` stamps the result."""
    if isinstance(check, PrometheusHealthCheck):
        return evaluate_prometheus(check, env, session, at=at)
    return evaluate_http(check, env, session, at=at)


def evaluate_http(check: HttpHealthCheck, env: Mapping[str, str], session: requests.Session, *,
                  at: datetime) -> GateResult:
    if check.json_field is not None and check.threshold is None:
        return _result("inconclusive", f"json_field {check.json_field} needs a threshold to compare with", at)
    if check.threshold is not None and check.json_field is None:
        return _result("inconclusive", "threshold needs a json_field naming the number to compare", at)
    inline = inline_secret(check.url, {f"header {h}": v for h, v in check.headers_from_env.items()})
    if inline is not None:
        return _result("inconclusive", inline, at)
    url = shown_url(check.url)
    headers: dict[str, str] = {}
    for header, variable in sorted(check.headers_from_env.items()):
        secret = env.get(variable)
        if not secret:
            return _result("inconclusive", f"environment variable {variable} (header {header}) is unset", at)
        headers[header] = secret
    try:
        status, body = _get(session, check.url, headers, None, check.timeout_seconds)
    except GateUnreadable as exc:
        return _result("inconclusive", f"GET {url}: {exc}", at)
    if status != check.expect_status:
        # With a json_field the number is the verdict: an answer without it cannot be judged.
        unreadable = status in INCONCLUSIVE_STATUSES or check.json_field is not None
        outcome: GateOutcome = "inconclusive" if unreadable else "failed"
        return _result(outcome, f"GET {url} answered {status}, expected {check.expect_status}", at)
    if check.json_field is None or check.threshold is None:
        return _result("passed", f"GET {url} answered {status}", at)
    try:
        value = as_number(json_field(_json(body), check.json_field), check.json_field)
    except GateUnreadable as exc:
        return _result("inconclusive", f"GET {url}: {exc}", at)
    return _verdict(value, check, check.threshold, check.json_field, at)


def evaluate_prometheus(check: PrometheusHealthCheck, env: Mapping[str, str], session: requests.Session, *,
                        at: datetime) -> GateResult:
    inline = inline_secret(check.server, {"token_env": check.token_env} if check.token_env else {})
    if inline is not None:
        return _result("inconclusive", inline, at)
    headers: dict[str, str] = {}
    if check.token_env is not None:
        token = env.get(check.token_env)
        if not token:
            return _result("inconclusive", f"environment variable {check.token_env} (token) is unset", at)
        headers["Authorization"] = f"Bearer {token}"
    url = f"{check.server.rstrip('/')}/api/v1/query"
    try:
        status, body = _get(session, url, headers, {"query": check.query}, check.timeout_seconds)
        if status != 200 and status not in (400, 422, 503):  # these carry Prometheus's error object
            raise GateUnreadable(f"answered {status}")
        value, series = parse_prometheus_response(_json(body))
    except GateUnreadable as exc:
        return _result("inconclusive", f"Prometheus query at {shown_url(check.server)}: {exc}", at)
    note = f" (first of {series} series; aggregate the query to one)" if series > 1 else ""
    return _verdict(value, check, check.threshold, "query result", at, note)


def _get(session: requests.Session, url: str, headers: Mapping[str, str], params: Mapping[str, str] | None,
         timeout: float) -> tuple[int, bytes]:
    """Status and body (at most MAX_BODY_BYTES); GateUnreadable when no answer came."""
    try:
        with session.get(url, headers=dict(headers), params=params, timeout=timeout, stream=True) as response:
            body = b""
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise GateUnreadable(f"the answer is larger than {MAX_BODY_BYTES} bytes")
            return response.status_code, body
    except requests.Timeout:
        raise GateUnreadable(f"no answer within {timeout:g}s") from None
    except requests.RequestException as exc:
        raise GateUnreadable(f"unreachable ({type(exc).__name__})") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise GateUnreadable("the answer is not JSON") from None
