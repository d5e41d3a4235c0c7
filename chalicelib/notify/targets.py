"""Where webhooks may go: public addresses only, unless a setting allows more.

A subscriber could otherwise make the service call into the network it runs
in: the instance metadata endpoint (169.254.169.254), loopback services,
private addresses. Webhook hosts are checked when a subscription is created
or changed, and again before each delivery on what the name resolves to then;
the delivery connects to the address that was checked, so a name that
resolves elsewhere a moment later cannot redirect it.
"""
import functools
import ipaddress
import socket
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


class RefusedTarget(Exception):
    """The host is, or resolves to, an address webhooks may not reach."""


class UnresolvedTarget(Exception):
    """The host name does not resolve (now)."""


@functools.lru_cache(maxsize=8)
def _allowed_networks(text):
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


def is_allowed(address, settings):
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped:  # ::ffff:127.0.0.1 is 127.0.0.1
        ip = ip.ipv4_mapped
    if any(ip in network for network in _allowed_networks(settings.webhook_allowed_networks)):
        return True
    return ip.is_global and not ip.is_multicast


def host_and_port(url):
    """(host, port) a webhook URL names; ValueError if it names none."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url} names no host")
    return parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme.lower()]


def resolve(host, port):
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnresolvedTarget(f"{host} does not resolve: {error}")
    return list(dict.fromkeys(sockaddr[0] for *_, sockaddr in found))


def checked_address(host, port, settings):
    """An address of `host` to connect to. Every address it resolves to must
    be allowed: a name with one private address among public ones is refused."""
    addresses = resolve(host, port)
    refused = [address for address in addresses if not is_allowed(address, settings)]
    if refused:
        named = host if refused[0] == host else f"{host} resolves to {refused[0]}"
        raise RefusedTarget(f"{named}: a loopback, link-local or private address, "
                            "which webhooks may not reach")
    return addresses[0]


def check_subscriber(url, settings):
    """Refuse a webhook URL whose host is not allowed. A name that does not
    resolve now is let through: delivery checks it again."""
    host, port = host_and_port(url)
    try:
        checked_address(host, port, settings)
    except UnresolvedTarget:
        pass
