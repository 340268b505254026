"""Downloading an http(s) image under the deployment's URL policy.

Every hop (redirects included) is resolved here, each resolved address must be public
(no loopback, private, link-local, shared, multicast, reserved or unspecified address,
IPv4-mapped and 6to4/Teredo IPv6 unwrapped; decimal, octal and hex host forms are caught
because the *resolved* address is checked) unless the deployer allow-listed the host or
its network, and the connection goes to exactly the address that was checked (no second
DNS lookup to rebind). One deadline covers the whole download, enforced by a watchdog
that closes the socket, so a server trickling one byte a second cannot hold a call; the
size is capped. Connection failures all read the same, so the fetcher is no port scanner.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from urllib.parse import urljoin, urlsplit

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.policy import ImagePolicy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_REDIRECTS = {301, 302, 303, 307, 308}


class URLRefusedError(InvalidImageError):
    """A URL the policy does not allow (scheme, or an address that is not public)."""


def _short(url: str) -> str:
    return url if len(url) <= 80 else url[:77] + "..."


def _unwrap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
    return ip


def is_public_address(ip: IPAddress) -> bool:
    """Whether an address is on the public internet (unwrapping IPv4 inside IPv6)."""
    inner = _unwrap(ip)
    for candidate in {ip, inner}:
        if (
            not candidate.is_global
            or candidate.is_private
            or candidate.is_loopback
            or candidate.is_link_local
            or candidate.is_multicast
            or candidate.is_reserved
            or candidate.is_unspecified
        ):
            return False
    return True


def _host_allowed(host: str, ip: IPAddress, allowed: tuple[str, ...]) -> bool:
    for entry in allowed:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if entry.lower().rstrip(".") == host.lower().rstrip("."):
                return True
            continue
        if ip in network or _unwrap(ip) in network:
            return True
    return False


_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="seal-dns")


def resolve_checked(
    url: str, host: str, port: int, policy: ImagePolicy, timeout_s: float | None = None
) -> list[IPAddress]:
    """The addresses to connect to: every address the host resolves to must be allowed.

    The lookup runs in a small pool so that the download's deadline covers it too.
    """
    lookup = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=timeout_s)
    except TimeoutError:
        raise InvalidImageError(_timeout_message(url, policy)) from None
    except (OSError, UnicodeError) as exc:
        raise InvalidImageError(
            f"cannot download the image at {_short(url)}: the host name does not resolve"
        ) from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise InvalidImageError(f"cannot download the image at {_short(url)}: no address")
    for ip in addresses:
        if not is_public_address(ip) and not _host_allowed(host, ip, policy.url_allowed_hosts):
            raise URLRefusedError(
                f"the image URL {_short(url)} was refused: its host resolves to a non-public "
                "address (loopback, private, link-local, multicast or reserved); a deployer "
                "can allow it with SealConfig(url_allowed_hosts=[...])"
            )
    return list(dict.fromkeys(addresses))


def _connection(
    scheme: str, host: str, port: int, addresses: list[IPAddress], timeout: float
) -> http.client.HTTPConnection:
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def connect_to_checked(
        address: object, timeout: float | None = None, source: object = None
    ) -> socket.socket:
        """Connect to one of the checked addresses only (never a fresh DNS answer)."""
        error: OSError | None = None
        for ip in addresses:
            try:
                return socket.create_connection((str(ip), port), timeout)
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    conn._create_connection = connect_to_checked  # type: ignore[attr-defined]
    return conn


class _Watchdog:
    """Closes a connection's socket when the download's deadline passes."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self.fired = False
        self._conn = conn
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def fetch_url(url: str, policy: ImagePolicy) -> bytes:
    """The body of an http(s) image URL, under the policy (raises ``InvalidImageError``)."""
    if not policy.allow_urls:
        raise URLRefusedError(
            f"image URLs are disabled: {_short(url)} was not fetched (set "
            "SealConfig(allow_urls=True) when building the graph to allow downloads, or "
            "pass a local file)"
        )
    deadline = time.monotonic() + policy.url_timeout_s
    for _hop in range(policy.max_redirects + 1):
        location = _fetch_once(url, policy, deadline)
        if isinstance(location, bytes):
            return location
        url = location
    raise InvalidImageError(
        f"cannot download the image at {_short(url)}: more than {policy.max_redirects} redirects"
    )


def _fetch_once(url: str, policy: ImagePolicy, deadline: float) -> bytes | str:
    """One hop: the body, or the URL a redirect points to."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise URLRefusedError(f"the image URL {_short(url)} is malformed") from exc
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in ("http", "https") or not host:
        raise URLRefusedError(
            f"the image URL {_short(url)} was refused: only http(s) URLs with a host are fetched"
        )
    addresses = resolve_checked(url, host, port, policy, max(0.0, deadline - time.monotonic()))
    left = deadline - time.monotonic()
    if left <= 0:
        raise InvalidImageError(_timeout_message(url, policy))
    conn = _connection(scheme, host, port, addresses, left)
    watchdog = _Watchdog(conn, left)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(
            "GET",
            path,
            headers={
                "User-Agent": "seal-agent",
                "Accept": "image/*",
                "Accept-Encoding": "identity",
            },
        )
        response = conn.getresponse()
        if response.status in _REDIRECTS:
            target = response.getheader("Location")
            if not target:
                raise InvalidImageError(f"the image URL {_short(url)} redirects nowhere")
            return urljoin(url, target)
        if response.status != 200:
            raise InvalidImageError(
                f"cannot download the image at {_short(url)}: the server answered "
                f"HTTP {response.status}"
            )
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > policy.max_download_bytes:
            raise InvalidImageError(_size_message(url, policy))
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
            if not chunk:
                break
            total += len(chunk)
            if total > policy.max_download_bytes:
                raise InvalidImageError(_size_message(url, policy))
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise InvalidImageError(_timeout_message(url, policy))
        if watchdog.fired:
            raise InvalidImageError(_timeout_message(url, policy))
        return b"".join(chunks)
    except InvalidImageError:
        raise
    except (OSError, http.client.HTTPException, ValueError):
        if watchdog.fired or time.monotonic() > deadline:
            raise InvalidImageError(_timeout_message(url, policy)) from None
        raise InvalidImageError(
            f"cannot download the image at {_short(url)}: the connection failed"
        ) from None
    finally:
        watchdog.cancel()
        conn.close()


def _timeout_message(url: str, policy: ImagePolicy) -> str:
    return (
        f"cannot download the image at {_short(url)}: it did not arrive within "
        f"{policy.url_timeout_s:g} s (SealConfig.url_timeout_s)"
    )


def _size_message(url: str, policy: ImagePolicy) -> str:
    return (
        f"the image at {_short(url)} is larger than {policy.max_download_bytes:,} bytes "
        "(SealConfig.max_download_bytes)"
    )


__all__ = ["URLRefusedError", "fetch_url", "is_public_address", "resolve_checked"]
