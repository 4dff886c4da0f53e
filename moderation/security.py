"""Response headers every page gets: a strict Content-Security-Policy with no inline script,
no framing (the widget relaxes frame-ancestors to its site's origins), no MIME sniffing."""
from flask import Flask, Response

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
       "frame-ancestors 'none'")


def headers(csp: str = CSP) -> list[tuple[str, str]]:
    """The security headers of a page whose Content-Security-Policy is csp."""
    found = [("Content-Security-Policy", csp), ("X-Content-Type-Options", "nosniff"),
             ("Referrer-Policy", "strict-origin-when-cross-origin")]
    if "frame-ancestors 'none'" in csp:
        found.append(("X-Frame-Options", "DENY"))
    return found


def secure_headers(response: Response) -> Response:
    for name, value in headers(response.headers.get("Content-Security-Policy", CSP)):
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    app.after_request(secure_headers)
