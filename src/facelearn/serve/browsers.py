"""What a browser may do with the service: which Host it answers, which origins may write, what the
page may load and who may frame it.

A browser on the operator's machine can be steered by any page it opens. Two attacks follow, and
both work without a key when the service runs in its default setup (loopback, no keys):

* **Cross-site writes.** A page from another origin cannot read the service's answers, but
  ``fetch(url, {mode: "no-cors", method: "POST", body: formData})`` still *sends* the request. So a
  state-changing request (any method but GET/HEAD/OPTIONS) that a browser marks as coming from
  another origin — an ``Origin`` that is not this service's own (or one the operator allowed with
  ``--allowed-origin``), ``Origin: null``, or ``Sec-Fetch-Site: cross-site/same-site`` — is refused
  with 403 ``cross_origin``. API clients send no ``Origin`` and are not affected.
* **DNS rebinding.** A name the attacker controls is re-pointed at 127.0.0.1, and the attacker's
  page then reads the service as its own origin. Its requests carry the attacker's name in
  ``Host``, so only names this service is reached by are answered: the bound address (and
  ``localhost``/``127.0.0.1``/``[::1]`` when bound to loopback) and any ``--allowed-host``. Bound to
  all interfaces (``0.0.0.0``, which needs keys) without ``--allowed-host``, any Host is accepted.

Every answer says ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and may not
be framed (CSP ``frame-ancestors 'none'``, ``X-Frame-Options: DENY``). The page's CSP allows only
its own inline script and style (by hash) and requests to its own origin.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from functools import cache
from importlib import resources
from urllib.parse import urlsplit

from .problems import Problem

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
ANY_ADDRESS = {"0.0.0.0", "::", ""}
COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
API_POLICY = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_POLICY = (  # the Swagger UI's script and style from this origin only (serve/docs.py); React sets style attributes
    b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def host_name(value: str) -> str:
    """``Host: [::1]:8000`` → ``::1``; ``Example.COM.:80`` → ``example.com``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, _, port = value.rpartition(":")
    return (name if name and port.isdigit() else value).rstrip(".")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BrowserPolicy:
    def __init__(self, bound_host: str, allowed_hosts=(), allowed_origins=()):
        names = {host_name(h) for h in allowed_hosts}
        bound = host_name(bound_host) if bound_host not in ANY_ADDRESS else ""
        if "*" in names or (not bound and not names):
            self.hosts: set[str] | None = None  # any Host (bound to every interface: keys protect it)
        else:
            self.hosts = names | ({bound} if bound else set())
            if bound and is_loopback(bound):
                self.hosts |= LOOPBACK_NAMES
        self.origins = {origin.strip().rstrip("/").lower() for origin in allowed_origins}

    def check(self, method: str, headers: dict[bytes, bytes]) -> None:
        host = headers.get(b"host", b"").decode("latin-1")
        if self.hosts is not None and host and host_name(host) not in self.hosts:
            raise Problem(
                400,
                "bad_host",
                f"this service does not answer to the name {host_name(host)[:100]!r} "
                "(a DNS-rebinding guard; the operator can allow it with --allowed-host)",
            )
        if method in SAFE_METHODS:
            return
        origin = headers.get(b"origin", b"").decode("latin-1").strip().rstrip("/").lower()
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
        if origin:
            if origin in self.origins or (origin != "null" and urlsplit(origin).netloc == host.lower()):
                return
            raise Problem(403, "cross_origin", f"a {method} from the web page at {origin[:100]} is refused")
        if site in ("cross-site", "same-site"):
            raise Problem(403, "cross_origin", f"a {method} from another site's page is refused")


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    if path == "/":
        policy = page_policy()
    elif path.startswith("/docs"):
        policy = DOCS_POLICY
    else:
        policy = API_POLICY
    return [*COMMON, (b"content-security-policy", policy)]


@cache
def page_policy() -> bytes:
    """The page's CSP: its inline script and style by hash, requests to its own origin only."""
    page = (resources.files("facelearn") / "serve" / "page" / "index.html").read_text()

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in found)

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ).encode()
