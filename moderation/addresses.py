"""Client IP addresses: parsed with ipaddress from REMOTE_ADDR (which ProxyFix fills from the
trusted X-Forwarded-For entry), written one way only, and counted per client: an IPv4 address,
or an IPv6 /64, which one household or server is usually given whole."""
import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse(raw: str | None) -> Address | None:
    """The address in '203.0.113.7', '203.0.113.7:51234', '2001:db8::1', '[2001:db8::1]:443' or
    'fe80::1%eth0'; '::ffff:203.0.113.7' is 203.0.113.7. None when there is no address in it."""
    text = (raw or "").strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address


def as_text(address: Address) -> str:
    """IPv4 as usual; IPv6 with all eight groups written out ('2001:db8:0:0:0:0:0:1'), so that the
    text of its /64 is a prefix of it: one client's comments are found with LIKE '2001:db8:0:0:%'."""
    if address.version == 4:
        return str(address)
    return ":".join(group.lstrip("0") or "0" for group in address.exploded.split(":"))


def ipv6_prefix(ip: str | None) -> str | None:
    """'2001:db8:0:0:' for any address of 2001:db8::/64 (in as_text's form); None for IPv4."""
    address = parse(ip)
    if address is None or address.version == 4:
        return None
    return ":".join(as_text(address).split(":")[:4]) + ":"


def client_key(ip: str | None) -> str:
    """Whom a limit counts: the IPv4 address, or the IPv6 /64 ('2001:db8::/64')."""
    address = parse(ip)
    if address is None:
        return ip or ""
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class CanonicalRemoteAddr:
    """WSGI middleware, inside ProxyFix: REMOTE_ADDR in as_text's form, or removed when it holds
    no address (a proxy's "unknown"), so every part of the app sees one spelling per address."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        address = parse(environ.get("REMOTE_ADDR"))
        if address is None:
            environ.pop("REMOTE_ADDR", None)
        else:
            environ["REMOTE_ADDR"] = as_text(address)
        return self.wsgi_app(environ, start_response)
