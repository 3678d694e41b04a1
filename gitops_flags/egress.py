"""Where a health gate may send a request, and which environment variables it may send: pure rules.

A flag file is reviewed content, but a reviewer reads YAML, not where a URL resolves or what a variable
holds. So the base policy decides (`health_checks:`), and these rules refuse what no policy may allow:

- variables that hold the workflow's own credentials (`GITHUB_TOKEN`, `ACTIONS_*`, `RUNNER_*`, the store
  key and the tool's own `GITOPS_FLAGS_*`), whatever the policy lists;
- link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200,
  metadata.google.internal), however the address is spelled (IPv4-mapped, NAT64, 6to4);
- loopback and private addresses unless the policy says `loopback: true` / `private_networks: true`.

`health.guarded_session` applies `address_refusal` to every address a name resolves to, at connect time;
`validate` applies the name and literal-address rules to the flag files, so the PR that adds a bad gate
fails its check.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .model import HttpHealthCheck, PrometheusHealthCheck

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Variables whose values are the workflow's credentials or the runner's internals.
FORBIDDEN_ENV = frozenset({"GITHUB_TOKEN", "GH_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN"})
FORBIDDEN_ENV_PREFIXES = ("ACTIONS_", "RUNNER_", "GITHUB_", "INPUT_", "GITOPS_FLAGS_")

# Names that answer with the cloud's instance credentials. Their addresses are refused too.
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data",
                            "instance-data.ec2.internal"})
_METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "fd00:ec2::254",    # AWS IMDS over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",    # Azure's wire server
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class Rules:
    """What the base policy's `health_checks:` allows (empty: no variables, any public host)."""

    env: frozenset[str] = frozenset()
    hosts: tuple[str, ...] = ()
    private_networks: bool = False
    loopback: bool = False
    proxy: bool = False  # use the runner's HTTP(S)_PROXY: the proxy resolves names, so only `hosts` binds


def gate_refusals(check: HttpHealthCheck | PrometheusHealthCheck, rules: Rules
                  ) -> list[tuple[tuple[str, ...], str]]:
    """Every field of a gate that `rules` refuse, as (field path within the gate, why): variables the
    policy does not allow-list or that are never sent, and a host it does not allow. Empty: allowed."""
    found: list[tuple[tuple[str, ...], str]] = []
    variables: list[tuple[tuple[str, ...], str]]
    if check.type == "http":
        variables = [(("headers_from_env", header), variable)
                     for header, variable in sorted(check.headers_from_env.items())]
        url_field, url = "url", check.url
    else:
        variables = [(("token_env",), check.token_env)] if check.token_env is not None else []
        url_field, url = "server", check.server
    for where, variable in variables:
        why = env_refusal(variable, rules)
        if why is not None:
            found.append((where, why))
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    why = host_refusal(host, rules)
    if why is not None:
        found.append(((url_field,), why))
    return found


def forbidden_env(name: str) -> str | None:
    """Why no policy may let a gate send this variable, or None."""
    upper = name.upper()
    if upper in FORBIDDEN_ENV or upper.startswith(FORBIDDEN_ENV_PREFIXES):
        refused = [*sorted(FORBIDDEN_ENV), *(prefix + "*" for prefix in FORBIDDEN_ENV_PREFIXES)]
        return (f"{name} holds the workflow's own credentials or settings and is never sent by a health "
                f"gate (refused: {', '.join(refused)})")
    return None


def env_refusal(name: str, rules: Rules) -> str | None:
    """Why a gate may not send variable `name` under `rules`, or None."""
    forbidden = forbidden_env(name)
    if forbidden is not None:
        return forbidden
    if name not in rules.env:
        return (f"{name} is not allow-listed for health gates: add it to `health_checks: {{env: [...]}}` in "
                "the policy (the base branch's policy decides)")
    return None


def host_pattern_problem(pattern: str) -> str | None:
    """Why a `health_checks.hosts` entry is not usable, or None: a host name, `*.domain` or an address."""
    text = pattern.strip().lower()
    if not text or text != pattern.lower():
        return "a host entry is empty or has spaces around it"
    body = text[2:] if text.startswith("*.") else text
    if _literal(body) is not None:
        return None if body == text else "`*.` takes a domain, not an address"
    labels = body.rstrip(".").split(".")
    if not all(label and len(label) <= 63 and all(c.isalnum() or c == "-" for c in label)
               for label in labels):
        return f"{pattern!r} is not a host name, `*.domain` or an IP address (no scheme, port or path)"
    return None


def normalise_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether `host` matches an entry: the same name (or address), or a subdomain of `*.domain`."""
    name = normalise_host(host)
    for pattern in patterns:
        entry = normalise_host(pattern)
        if entry.startswith("*."):
            if name.endswith(entry[1:]) and len(name) > len(entry) - 1:
                return True
        elif name == entry or _same_address(name, entry):
            return True
    return False


def host_refusal(host: str, rules: Rules) -> str | None:
    """Why the URL's host is refused before any lookup (metadata names, the allow-list, a literal
    address that `address_refusal` refuses), or None."""
    name = normalise_host(host)
    if not name:
        return "the URL has no host"
    if name in METADATA_NAMES:
        return f"{name} is a cloud metadata service, never a health gate"
    address = _literal(name)
    why = address_refusal(address, rules) if address is not None else None
    if why is None and rules.hosts and not host_allowed(name, rules.hosts):
        why = (f"{name} is not in the policy's `health_checks: {{hosts: [...]}}` "
               f"(allowed: {', '.join(rules.hosts)})")
    return why


def address_refusal(address: IPAddress, rules: Rules) -> str | None:
    """Why a gate may not connect to `address`, or None. Embedded IPv4 addresses (IPv4-mapped, NAT64,
    6to4) are judged as the IPv4 address they reach."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return address_refusal(inner, rules)
    if address in _METADATA_ADDRESSES or address.is_link_local:
        return f"{address} is link-local or a cloud metadata address, never a health gate"
    if address.is_loopback or address.is_unspecified:
        if rules.loopback:
            return None
        return f"{address} is this machine (loopback); allow it with `health_checks: {{loopback: true}}`"
    if address.is_multicast or address.is_reserved:
        return f"{address} is a multicast or reserved address"
    if not address.is_global:
        if rules.private_networks:
            return None
        return (f"{address} is a private or internal address; allow private networks with "
                "`health_checks: {private_networks: true}`")
    return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _literal(host: str) -> IPAddress | None:
    """The address a host names without a lookup, including the legacy IPv4 spellings that the resolver
    accepts (`127.1`, `0x7f.0.0.1`, `2130706433`)."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text and all(c in "0123456789abcdefxABCDEFX." for c in text) and any(c.isdigit() for c in text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _same_address(a: str, b: str) -> bool:
    left, right = _literal(a), _literal(b)
    return left is not None and left == right
