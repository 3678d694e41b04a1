"""Attacks on health gates, staged against real sockets on this machine (loopback only).

A reviewed flag file chooses a gate's URL and the variables sent with it. These tests play the flag file
that tries to leak a credential (a redirect to another host:port, a forbidden variable), to probe the
runner's network (metadata and link-local addresses, a name that resolves to this machine), or to push
the service's text into the rollout state (an echoed body), and assert that each one fails.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from gitops_flags import egress, health
from gitops_flags.model import HttpHealthCheck, Policy, PrometheusHealthCheck
from gitops_flags.tree import DictTree
from gitops_flags.validate import validate_tree

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SECRET = "s3cret-value-that-must-stay-home"
LOOPBACK = egress.Rules(env=frozenset({"STATUS_API_TOKEN"}), loopback=True)


# --- a recording HTTP server on 127.0.0.1 ---------------------------------------------------------------


Answer = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Server:
    answer: Answer
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], Server]]:
    started: list[ThreadingHTTPServer] = []

    def start(answer: Answer) -> Server:
        server = Server(answer)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "headers": dict(self.headers.items())})
                server.answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        server.port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return server

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def reply(status: int, body: Any = b"", headers: dict[str, str] | None = None) -> Answer:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def http_gate(url: str, **fields: Any) -> HttpHealthCheck:
    return HttpHealthCheck.model_validate({"type": "http", "url": url, "timeout_seconds": 5.0, **fields})


def run(check: HttpHealthCheck | PrometheusHealthCheck, rules: egress.Rules = LOOPBACK,
        env: dict[str, str] | None = None) -> tuple[str, str]:
    result = health.evaluate(check, env if env is not None else {"STATUS_API_TOKEN": SECRET},
                             requests.Session(), at=AT, rules=rules)
    return result.outcome, result.detail


# --- redirects carry nothing anywhere ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_port_is_not_followed_and_the_header_never_arrives(
    serve: Callable[[Answer], Server], status: int
) -> None:
    elsewhere = serve(reply(200, {"data": {"error_rate": 0}}))
    other = f"http://localhost:{elsewhere.port}/collect"
    gate = serve(reply(status, headers={"Location": other}))
    check = http_gate(f"{gate.url}/health", headers_from_env={"X-Api-Key": "STATUS_API_TOKEN"})
    outcome, detail = run(check, egress.Rules(env=frozenset({"STATUS_API_TOKEN"}), loopback=True))
    assert outcome == "inconclusive" and "redirect" in detail and "never followed" in detail
    assert gate.requests[0]["headers"]["X-Api-Key"] == SECRET  # the gate's own host got it, as asked
    assert elsewhere.requests == []  # nothing, let alone the header, reached the other host:port
    assert SECRET not in detail and "localhost" not in detail


def test_a_redirect_to_the_same_address_is_not_followed_either(serve: Callable[[Answer], Server]) -> None:
    gate = serve(reply(302, headers={"Location": "/elsewhere"}))
    outcome, _ = run(http_gate(f"{gate.url}/health"))
    assert outcome == "inconclusive" and [r["path"] for r in gate.requests] == ["/health"]


# --- addresses: metadata always refused, loopback and private only when the policy allows --------------


METADATA_URLS = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://2852039166/",  # 169.254.169.254 as one number
    "http://169.254.170.2/v2/credentials",  # ECS task credentials
    "http://[fe80::1]/",
    "http://100.100.100.200/latest/meta-data/",
]
EVERYTHING = egress.Rules(env=frozenset({"STATUS_API_TOKEN"}), private_networks=True, loopback=True)


@pytest.mark.parametrize("url", METADATA_URLS)
def test_metadata_and_link_local_addresses_are_refused_whatever_the_policy_allows(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_connection(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a refused gate must not connect")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    monkeypatch.setattr(health.urllib3_connection, "create_connection", no_connection)
    outcome, detail = run(http_gate(url, headers_from_env={"X-Api-Key": "STATUS_API_TOKEN"}), EVERYTHING)
    assert outcome == "inconclusive" and "refused by the gate rules" in detail
    assert "metadata" in detail or "link-local" in detail


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"])
def test_a_name_that_resolves_to_a_metadata_address_is_refused_at_connect_time(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS answers chosen by whoever controls the name: the check is on the address, when connecting."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    real = socket.getaddrinfo

    def resolver(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "status.example.com":
            return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    def no_connection(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a refused address must not be connected to")

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setattr(health.urllib3_connection, "create_connection", no_connection)
    rules = egress.Rules(env=frozenset({"STATUS_API_TOKEN"}), hosts=("status.example.com",),
                         private_networks=True, loopback=True)
    check = http_gate("http://status.example.com/health", headers_from_env={"X-Api-Key": "STATUS_API_TOKEN"})
    outcome, detail = run(check, rules)
    assert outcome == "inconclusive"
    assert "refused by the gate rules: status.example.com resolves to" in detail and "metadata" in detail


def test_a_name_resolving_to_loopback_is_refused_without_the_policy_allowing_it(
    serve: Callable[[Answer], Server]
) -> None:
    local = serve(reply(200, {"ok": True}))
    check = http_gate(f"http://localhost:{local.port}/health",
                      headers_from_env={"X-Api-Key": "STATUS_API_TOKEN"})
    outcome, detail = run(check, egress.Rules(env=frozenset({"STATUS_API_TOKEN"})))
    assert outcome == "inconclusive" and "localhost resolves to" in detail and "loopback" in detail
    assert local.requests == []  # refused before connecting: not even a probe
    # The same gate passes once the policy allows this machine.
    assert run(check, LOOPBACK)[0] == "passed"
    assert local.requests[0]["headers"]["X-Api-Key"] == SECRET


def test_literal_loopback_and_private_addresses_need_the_policy(serve: Callable[[Answer], Server]) -> None:
    local = serve(reply(200))
    public_only = egress.Rules()
    outcome, detail = run(http_gate(f"{local.url}/"), public_only, env={})
    assert outcome == "inconclusive" and "loopback" in detail and local.requests == []
    outcome, detail = run(http_gate("http://10.1.2.3/"), public_only, env={})
    assert outcome == "inconclusive" and "private" in detail


def test_the_host_allow_list_binds_names_and_addresses(serve: Callable[[Answer], Server]) -> None:
    local = serve(reply(200))
    rules = egress.Rules(hosts=("status.example.com", "*.internal.example.com"), loopback=True)
    outcome, detail = run(http_gate(f"{local.url}/"), rules, env={})
    assert outcome == "inconclusive" and "not in the policy" in detail and local.requests == []
    assert egress.host_allowed("a.b.internal.example.com", rules.hosts)
    assert not egress.host_allowed("internal.example.com", rules.hosts)
    assert not egress.host_allowed("status.example.com.evil.test", rules.hosts)
    assert not egress.host_allowed("evilinternal.example.com", rules.hosts)


def test_the_runners_proxy_is_used_only_when_the_policy_opts_in(
    serve: Callable[[Answer], Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(reply(200, {"via": "proxy"}))
    target = serve(reply(200, {"via": "direct"}))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "")
    check = http_gate(f"{target.url}/health")
    assert run(check, LOOPBACK, env={})[0] == "passed"
    assert proxy.requests == [] and len(target.requests) == 1
    opted = egress.Rules(hosts=("127.0.0.1",), loopback=True, proxy=True)
    assert run(check, opted, env={})[0] == "passed"
    assert len(proxy.requests) == 1 and proxy.requests[0]["path"].startswith("http://127.0.0.1:")


# --- variables: only what the base policy lists, never the workflow's own credentials -----------------


@pytest.mark.parametrize("variable", [
    "GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "RUNNER_TEMP",
    "GITOPS_FLAGS_STORE_KEY", "GITOPS_FLAGS_TOKEN", "GH_TOKEN", "github_token",
])
def test_the_workflows_credentials_are_never_sent_even_when_listed(
    variable: str, serve: Callable[[Answer], Server]
) -> None:
    local = serve(reply(200))
    rules = egress.Rules(env=frozenset({variable}), loopback=True)  # a policy cannot list them (see below)
    check = http_gate(f"{local.url}/", headers_from_env={"X-Api-Key": variable})
    outcome, detail = run(check, rules, env={variable: SECRET})
    assert outcome == "inconclusive" and "never sent" in detail and local.requests == []
    prom = PrometheusHealthCheck.model_validate({"type": "prometheus", "server": local.url, "query": "up",
                                                 "threshold": 1.0, "token_env": variable})
    assert run(prom, rules, env={variable: SECRET})[0] == "inconclusive" and local.requests == []


def test_a_variable_the_policy_does_not_list_is_not_sent(serve: Callable[[Answer], Server]) -> None:
    local = serve(reply(200))
    check = http_gate(f"{local.url}/", headers_from_env={"Authorization": "DEPLOY_KEY"})
    outcome, detail = run(check, LOOPBACK, env={"DEPLOY_KEY": SECRET})
    assert outcome == "inconclusive" and "DEPLOY_KEY is not allow-listed" in detail and local.requests == []


# --- the answer: never echoed, bounded in size and time ------------------------------------------------


def test_the_answers_text_never_reaches_the_result(serve: Callable[[Answer], Server]) -> None:
    hostile = "::stop-commands::x <img src=x> " + SECRET
    local = serve(reply(200, {"data": {"error_rate": hostile}}))
    outcome, detail = run(http_gate(f"{local.url}/", json_field="data.error_rate", threshold=0.01))
    assert outcome == "inconclusive" and detail.endswith("data.error_rate is text that is not a number")
    local.answer = reply(200, {"data": {"error_rate": {"nested": hostile}}})
    outcome, detail = run(http_gate(f"{local.url}/", json_field="data.error_rate", threshold=0.01))
    assert "data.error_rate is an object, not a number" in detail and SECRET not in detail
    local.answer = reply(400, {"status": "error", "errorType": "bad_data", "error": hostile})
    prom = PrometheusHealthCheck.model_validate({"type": "prometheus", "server": local.url, "query": "up",
                                                 "threshold": 1.0})
    outcome, detail = run(prom)
    assert outcome == "inconclusive" and "(bad_data)" in detail and SECRET not in detail
    local.answer = reply(400, {"status": "error", "errorType": hostile, "error": hostile})
    assert SECRET not in run(prom)[1]


def test_an_answer_larger_than_the_cap_is_not_read(serve: Callable[[Answer], Server]) -> None:
    local = serve(reply(200, b"[" + b"0," * health.MAX_BODY_BYTES + b"0]"))
    outcome, detail = run(http_gate(f"{local.url}/", json_field="0", threshold=1.0))
    assert outcome == "inconclusive" and "larger than" in detail


def test_a_server_that_drips_its_answer_is_cut_at_the_gates_timeout(
    serve: Callable[[Answer], Server]
) -> None:
    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        try:
            for _ in range(100):  # a byte every 0.2 s: each read is quick, the whole answer is not
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    local = serve(drip)
    started = time.monotonic()
    outcome, detail = run(http_gate(f"{local.url}/", timeout_seconds=1.0))
    elapsed = time.monotonic() - started
    assert outcome == "inconclusive" and "within 1s" in detail
    assert elapsed < 4, elapsed  # 1 s allowed; the server would take 20 s


# --- validate: the PR that adds a refused gate fails, with file and line ---------------------------------


POLICY = Policy.model_validate({
    "environments": ["production"], "rules": [{"match": {}, "workflow": "w"}],
    "workflows": {"w": {"steps": [{"id": "a", "role": "codeowner"}]}},
    "health_checks": {"env": ["STATUS_API_TOKEN"], "hosts": ["status.acme.example"]},
})
FLAG = """\
key: f
type: boolean
variants: {"on": true, "off": false}
default_variant: "off"
environments:
  production:
    enabled: true
    rollout:
      variant: "on"
      health_check:
"""


def gate_problems(gate: str, policy: Policy | None = POLICY) -> list[tuple[int | None, str]]:
    text = FLAG + textwrap.indent(textwrap.dedent(gate), " " * 8)
    found = validate_tree(DictTree({"flags/f.yaml": text}), policy).problems
    return [(p.line, p.message) for p in found]


def test_validate_names_the_refused_field_with_its_line() -> None:
    found = gate_problems("""\
        type: http
        url: http://169.254.169.254/latest/meta-data/
        headers_from_env:
          X-Api-Key: GITHUB_TOKEN
          X-Other: DEPLOY_KEY
    """)
    by_line = dict(found)
    assert set(by_line) == {12, 14, 15}, found
    assert by_line[12].startswith("environments.production.rollout.health_check.url: ")
    assert "link-local" in by_line[12]
    assert "headers_from_env.X-Api-Key: GITHUB_TOKEN holds the workflow's own credentials" in by_line[14]
    assert "DEPLOY_KEY is not allow-listed" in by_line[15]


def test_validate_accepts_a_gate_the_policy_allows_and_refuses_a_host_it_does_not() -> None:
    good = """\
        type: http
        url: https://status.acme.example/api/checkout
        headers_from_env: {Authorization: STATUS_API_TOKEN}
    """
    assert gate_problems(good) == []
    found = gate_problems("""\
        type: prometheus
        server: https://prometheus.elsewhere.example
        query: up
        threshold: 1
        token_env: STATUS_API_TOKEN
    """)
    assert [line for line, _ in found] == [12] and "not in the policy" in found[0][1]


def test_the_policy_cannot_allow_the_workflows_credentials() -> None:
    text = """\
        environments: [production]
        rules: [{match: {}, workflow: w}]
        workflows: {w: {steps: [{id: a, role: codeowner}]}}
        health_checks:
          env: [STATUS_API_TOKEN, GITHUB_TOKEN]
          hosts: [status.acme.example, "https://bad.example/path"]
          proxy: true
    """
    from gitops_flags.validate import read_policy

    policy, problems = read_policy(DictTree({".github/gitops-flags.yml": textwrap.dedent(text)}))
    assert policy is None
    messages = {p.line: p.message for p in problems}
    assert "GITHUB_TOKEN holds the workflow's own credentials" in messages[5], problems
    assert "not a host name" in messages[6], problems


# --- the pure address rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "category"), [
    ("8.8.8.8", None), ("2606:4700::1111", None),
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("0.0.0.0", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.1", "private"), ("192.168.1.1", "private"), ("172.16.0.1", "private"), ("fc00::1", "private"),
    ("100.64.0.1", "private"), ("64:ff9b::a00:1", "private"), ("2002:a00:1::", "private"),
    ("169.254.169.254", "metadata"), ("fe80::1", "metadata"), ("fd00:ec2::254", "metadata"),
    ("2002:a9fe:a9fe::", "metadata"), ("100.100.100.200", "metadata"),
    ("224.0.0.1", "multicast"), ("240.0.0.1", "multicast"),
])
def test_address_categories(address: str, category: str | None) -> None:
    why = egress.address_refusal(ipaddress.ip_address(address), egress.Rules())
    words = {"loopback": "loopback", "private": "private", "metadata": "metadata", "multicast": "multicast"}
    assert (why is None) == (category is None), why
    if category is not None:
        assert why is not None and words[category] in why
    if category in ("loopback", "private"):
        allowed = egress.Rules(private_networks=True, loopback=True)
        assert egress.address_refusal(ipaddress.ip_address(address), allowed) is None
