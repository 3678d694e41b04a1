"""Health gates: ask a service or Prometheus whether a rollout may go on.

`evaluate` sends one GET and returns a `GateResult`: `passed`, `failed` (the service answered, and the
answer is bad), or `inconclusive` (the gate could not be evaluated: unreachable, timed out, refused our
credentials, answered something we cannot read, a credential variable is not set, or the gate rules
refuse it). Inconclusive never advances a rollout and never rolls it back.

A reviewed flag file is still not trusted with the runner's network or environment (docs/security.md,
"Health gates"):
- credentials come only from environment variables that the flag file names (`headers_from_env`,
  `token_env`) *and* the base policy allow-lists (`health_checks: {env: [...]}`); the workflow's own
  credentials are never sent (`egress.forbidden_env`);
- the host must be allowed by the policy, and every address it resolves to is checked when the connection
  is made (`guard`): link-local and metadata addresses always refused, loopback and private ones unless
  the policy allows them. No proxy from the environment is used, and redirects are never followed, so no
  header travels anywhere but the checked address;
- the answer is capped in size (`MAX_BODY_BYTES`) and the whole exchange in time (`timeout_seconds`);
- the answer's text never appears in a result: details name the field path and the type found.

The parsing and comparison are pure functions beside the calls. The module stays whole (~440 lines):
the connect-time guard, the capped read and the parsing of answers are read together to see that no
header reaches an unchecked address; the pure rules themselves live in `egress`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import connection as urllib3_connection

from . import egress
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
NO_RULES = egress.Rules()  # no policy: no variables may be sent, public hosts only
# Prometheus's documented `errorType`s: the only part of an error answer a detail repeats.
PROMETHEUS_ERROR_TYPES = frozenset({"timeout", "canceled", "execution", "bad_data", "internal", "unavailable",
                                    "not_found", "not_acceptable"})
_TYPE_NAMES: dict[type, str] = {bool: "a boolean", str: "text", int: "a number", float: "a number",
                                dict: "an object", list: "a list"}


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
    """A finite number from JSON: a number, or a string holding one (Prometheus sends strings). The
    message names `what` and the type found, never the value (it is the service's text)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise GateUnreadable(f"{what} is {type_name(value)}, not a number")
    try:
        number = float(value)
    except ValueError:
        raise GateUnreadable(f"{what} is text that is not a number") from None
    if not math.isfinite(number):
        raise GateUnreadable(f"{what} is not a finite number")
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
        kind = body.get("errorType")
        named = f" ({kind})" if kind in PROMETHEUS_ERROR_TYPES else ""
        raise GateUnreadable(f"Prometheus answered an error{named}; its message is not shown")
    data = body.get("data")
    if not isinstance(data, dict):
        raise GateUnreadable("the answer has no `data` object")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return as_number(_sample_value(result), "the scalar"), 1
    if kind != "vector":
        shown = kind if kind in ("matrix", "string") else "result of an unknown type"
        raise GateUnreadable(f"the query returned a {shown}; use an instant query returning one number")
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
        raise GateUnreadable(f"a sample is {type_name(sample)}, not [time, value]")
    return sample[1]


def type_name(value: Any) -> str:
    """What JSON type a value is, for messages that must not repeat the value."""
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), "an unknown type")


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
    rules: egress.Rules = NO_RULES,
) -> GateResult:
    """Run one gate under the base policy's `rules`. `env` supplies the credential variables; `at` stamps
    the result. `session` gets the connect-time guard mounted (see `guard`)."""
    if isinstance(check, PrometheusHealthCheck):
        return evaluate_prometheus(check, env, session, at=at, rules=rules)
    return evaluate_http(check, env, session, at=at, rules=rules)


def _refused(check: HttpHealthCheck | PrometheusHealthCheck, rules: egress.Rules, at: datetime
             ) -> GateResult | None:
    found = egress.gate_refusals(check, rules)
    if not found:
        return None
    where, why = found[0]
    return _result("inconclusive", f"refused by the gate rules: {'.'.join(where)}: {why}", at)


def evaluate_http(check: HttpHealthCheck, env: Mapping[str, str], session: requests.Session, *,
                  at: datetime, rules: egress.Rules = NO_RULES) -> GateResult:
    if check.json_field is not None and check.threshold is None:
        return _result("inconclusive", f"json_field {check.json_field} needs a threshold to compare with", at)
    if check.threshold is not None and check.json_field is None:
        return _result("inconclusive", "threshold needs a json_field naming the number to compare", at)
    inline = inline_secret(check.url, {f"header {h}": v for h, v in check.headers_from_env.items()})
    if inline is not None:
        return _result("inconclusive", inline, at)
    refused = _refused(check, rules, at)
    if refused is not None:
        return refused
    url = shown_url(check.url)
    headers: dict[str, str] = {}
    for header, variable in sorted(check.headers_from_env.items()):
        secret = env.get(variable)
        if not secret:
            return _result("inconclusive", f"environment variable {variable} (header {header}) is unset", at)
        headers[header] = secret
    try:
        status, body = _get(session, rules, check.url, headers, None, check.timeout_seconds)
    except GateUnreadable as exc:
        return _result("inconclusive", f"GET {url}: {exc}", at)
    if status != check.expect_status:
        if 300 <= status < 400:
            return _result("inconclusive", f"GET {url} answered {status}, a redirect; redirects are never "
                           "followed: point the gate at the final URL", at)
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
                        at: datetime, rules: egress.Rules = NO_RULES) -> GateResult:
    inline = inline_secret(check.server, {"token_env": check.token_env} if check.token_env else {})
    if inline is not None:
        return _result("inconclusive", inline, at)
    refused = _refused(check, rules, at)
    if refused is not None:
        return refused
    headers: dict[str, str] = {}
    if check.token_env is not None:
        token = env.get(check.token_env)
        if not token:
            return _result("inconclusive", f"environment variable {check.token_env} (token) is unset", at)
        headers["Authorization"] = f"Bearer {token}"
    url = f"{check.server.rstrip('/')}/api/v1/query"
    try:
        status, body = _get(session, rules, url, headers, {"query": check.query}, check.timeout_seconds)
        if status != 200 and status not in (400, 422, 503):  # these carry Prometheus's error object
            raise GateUnreadable(f"answered {status}")
        value, series = parse_prometheus_response(_json(body))
    except GateUnreadable as exc:
        return _result("inconclusive", f"Prometheus query at {shown_url(check.server)}: {exc}", at)
    note = f" (first of {series} series; aggregate the query to one)" if series > 1 else ""
    return _verdict(value, check, check.threshold, "query result", at, note)


def _get(session: requests.Session, rules: egress.Rules, url: str, headers: Mapping[str, str],
         params: Mapping[str, str] | None, timeout: float) -> tuple[int, bytes]:
    """Status and body (at most MAX_BODY_BYTES) of one GET that follows no redirect and ends within
    `timeout` seconds in all; GateUnreadable when no complete answer came."""
    watchdog = guard(session, rules)
    # Only with the policy's `proxy: true`, and then only the runner's own proxy settings.
    proxies = requests.utils.get_environ_proxies(url) if rules.proxy else {}
    try:
        with watchdog.deadline(timeout), session.get(url, headers=dict(headers), params=params,
                                                     timeout=timeout, stream=True, proxies=proxies,
                                                     allow_redirects=False) as response:
            body = bytearray()
            for chunk in response.iter_content(16 * 1024):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise GateUnreadable(f"the answer is larger than {MAX_BODY_BYTES} bytes")
            if watchdog.expired:
                raise GateUnreadable(f"no complete answer within {timeout:g}s")
            return response.status_code, bytes(body)
    except Refused as exc:
        raise GateUnreadable(f"refused by the gate rules: {exc}") from None
    except requests.Timeout:
        raise GateUnreadable(f"no answer within {timeout:g}s") from None
    except requests.RequestException as exc:
        if watchdog.expired:
            raise GateUnreadable(f"no complete answer within {timeout:g}s") from None
        refused = _refused_cause(exc)
        if refused is not None:
            raise GateUnreadable(f"refused by the gate rules: {refused}") from None
        raise GateUnreadable(f"unreachable ({type(exc).__name__})") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise GateUnreadable("the answer is not JSON") from None


# --- the connect-time guard ---------------------------------------------------------------------------


class Refused(Exception):
    """The gate rules refuse an address the host resolved to (no connection was made)."""


def _refused_cause(exc: BaseException) -> Refused | None:
    seen: BaseException | None = exc
    for _ in range(8):  # requests and urllib3 wrap the cause a few levels deep
        if seen is None:
            return None
        if isinstance(seen, Refused):
            return seen
        reason = getattr(seen, "reason", None)
        seen = reason if isinstance(reason, BaseException) else (seen.__context__ or seen.__cause__)
    return None


class Watchdog:
    """Checks each address before connecting to it, and bounds a whole exchange in time: at the deadline
    it shuts the sockets it opened, which ends any read that a slow server keeps alive byte by byte."""

    def __init__(self, rules: egress.Rules) -> None:
        self.rules = rules
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def connect(self, host: str, port: int, timeout: Any, source_address: Any, socket_options: Any
                ) -> socket.socket:
        """A socket to an address of `host` that the rules allow; Refused when any address is refused
        (a name that also resolves to a metadata address is not one to trust)."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]).split("%")[0] for info in infos]
        for address in addresses:
            why = egress.address_refusal(ipaddress.ip_address(address), self.rules)
            if why is not None:
                raise Refused(f"{host} resolves to {why}")
        error: OSError | None = None
        for address in dict.fromkeys(addresses):
            try:
                sock = urllib3_connection.create_connection(
                    (address, port), timeout, source_address=source_address, socket_options=socket_options)
            except OSError as exc:
                error = exc
                continue
            with self._lock:
                if self.expired:
                    sock.close()
                    raise TimeoutError("deadline passed")
                self._sockets.append(sock)
            return sock
        raise error or OSError(f"{host} has no address")

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        timer = threading.Timer(seconds, self._expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def guard(session: requests.Session, rules: egress.Rules) -> Watchdog:
    """Mount the guard on `session` for http and https, and stop it reading the environment (proxies,
    .netrc): a proxy would resolve the name itself, past the check, so `_get` passes the runner's proxy
    only when the policy says `proxy: true`. Returns the watchdog of this mount."""
    watchdog = Watchdog(rules)
    adapter = _GuardedAdapter(watchdog)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    session.proxies.clear()
    return watchdog


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, watchdog: Watchdog) -> None:
        self._watchdog = watchdog
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        watchdog = self._watchdog

        class Connection(HTTPConnection):
            def _new_conn(self) -> socket.socket:
                return watchdog.connect(self._dns_host, self.port, self.timeout, self.source_address,
                                        self.socket_options)

        class SecureConnection(HTTPSConnection):  # TLS still verifies the name in the URL
            def _new_conn(self) -> socket.socket:
                return watchdog.connect(self._dns_host, self.port, self.timeout, self.source_address,
                                        self.socket_options)

        class Pool(HTTPConnectionPool):
            ConnectionCls = Connection

        class SecurePool(HTTPSConnectionPool):
            ConnectionCls = SecureConnection

        self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SecurePool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if not self._watchdog.rules.proxy:
            raise Refused("health gates use a proxy only with the policy's `health_checks: {proxy: true}`")
        return super().proxy_manager_for(proxy, **proxy_kwargs)
