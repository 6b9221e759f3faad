"""Which network destinations the notifier may contact (server-side request forgery guard).

Cloud metadata endpoints are always refused: a channel URL pointing there would hand instance
credentials to whoever can create channels. Private, loopback and link-local ranges are allowed by
default because self-hosted receivers usually live there; ``notify.allow_private_networks=false``
refuses every address that is not globally routable. ``notify.blocked_networks`` adds ranges.

The check runs when the connection is made, on the addresses the name resolved to, and the
connection goes to a checked address: a name that re-resolves to a forbidden address between a
check and the connect (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx

from vigil.errors import ConfigurationError, VigilError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Instance metadata services (AWS/GCP/Azure/OpenStack, AWS IPv6, ECS tasks, Alibaba).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)


class BlockedDestinationError(VigilError):
    """The destination resolves only to addresses the notifier must not contact."""


def _normalise(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class AddressPolicy:
    def __init__(self, *, allow_private: bool = True, blocked: Sequence[str] = ()) -> None:
        self.allow_private = allow_private
        try:
            self.blocked: tuple[IPNetwork, ...] = tuple(
                ipaddress.ip_network(n, strict=False) for n in blocked
            )
        except ValueError as exc:
            raise ConfigurationError(f"notify.blocked_networks: {exc}") from exc

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why ``address`` must not be contacted, or None when it may."""
        ip = _normalise(ipaddress.ip_address(address))
        if ip in METADATA_ADDRESSES:
            return f"{ip} is a cloud metadata address"
        if ip.is_unspecified or ip.is_multicast:
            return f"{ip} is not a unicast address"
        for net in self.blocked:
            if ip.version == net.version and ip in net:
                return f"{ip} is in blocked network {net}"
        if not self.allow_private and not ip.is_global:
            return f"{ip} is not a public address (notify.allow_private_networks is off)"
        return None

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` that may be contacted (in resolver order).

        Raises :class:`BlockedDestinationError` when none may, ``OSError`` when the name does not
        resolve.
        """
        host = host.strip("[]")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            candidates: Iterable[str] = [str(literal)]
        else:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            candidates = dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos)
        allowed: list[str] = []
        reasons: list[str] = []
        for addr in candidates:
            reason = self.refusal(addr)
            if reason is None:
                allowed.append(addr)
            else:
                reasons.append(reason)
        if not allowed:
            raise BlockedDestinationError(
                f"destination {host} refused: {'; '.join(reasons) or 'no address'}"
            )
        return allowed

    def check_literal(self, host: str) -> str | None:
        """For input validation: the refusal of a literal IP host (names are checked later)."""
        try:
            return self.refusal(host.strip("[]"))
        except ValueError:
            return None


class GuardedBackend(httpcore.SyncBackend):
    """httpcore network backend that connects only to addresses the policy allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.resolve(host, port)
        except BlockedDestinationError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for addr in addresses:
            try:
                return super().connect_tcp(
                    addr,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last


class GuardedTransport(httpx.HTTPTransport):
    """httpx transport over :class:`GuardedBackend`, ignoring proxy environment variables."""

    def __init__(self, policy: AddressPolicy, *, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(trust_env=False)
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=10)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )


def guarded_client(
    policy: AddressPolicy, *, connect_timeout_s: float, timeout_s: float, user_agent: str
) -> httpx.Client:
    """The HTTP client of webhook and Slack channels: guarded, no redirects, bounded timeouts."""
    return httpx.Client(
        transport=GuardedTransport(policy),
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s, pool=connect_timeout_s),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": user_agent},
    )
