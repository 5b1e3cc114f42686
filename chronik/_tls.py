"""TLS for ``chronik serve``: uvicorn's SSL options from the settings, and each request's client
certificate in its ASGI scope.

uvicorn verifies client certificates (``ssl_cert_reqs``, ``ssl_ca_certs``) but does not tell
the app who presented one. :class:`ClientCertificateProtocol` is uvicorn's httptools protocol
that, for a TLS connection, adds the ASGI ``tls`` extension to every request's scope
(``scope["extensions"]["tls"]``, the fields of the ASGI TLS extension), filled from the
connection's ``ssl_object`` once, when the connection is made. The worker guard reads the
certificate's CN from its ``client_cert_name`` (``api/worker_auth.py``).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chronik.core.errors import ConfigError

from .settings import Settings

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope

__all__ = ["ClientCertificateProtocol", "tls_extension", "uvicorn_tls_options"]

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

# RFC 4514 names of the attributes Python's ssl module spells out; others keep its name.
_SHORT_NAMES = {
    "commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
    "localityName": "L", "stateOrProvinceName": "ST", "streetAddress": "STREET",
    "domainComponent": "DC", "userId": "UID",
}  # fmt: skip


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that serve HTTPS as the ``TLS_*`` settings say (none for
    plain HTTP); a ``ConfigError`` naming the variable when they do not fit together or a file
    cannot be used.

    With ``TLS_CA_PATH`` the server asks every connection for a client certificate signed by
    that CA: ``TLS_REQUIRE_CLIENT_CERT=true`` refuses a connection without one
    (``ssl.CERT_REQUIRED``), false lets it in (``ssl.CERT_OPTIONAL``, so ``mixed`` works).
    """
    cert, key, ca = settings.tls_cert_path, settings.tls_key_path, settings.tls_ca_path
    if cert is None:
        stray = [name for name, value in (("TLS_KEY_PATH", key), ("TLS_CA_PATH", ca)) if value]
        if settings.tls_require_client_cert:
            stray.append("TLS_REQUIRE_CLIENT_CERT")
        if stray:
            raise ConfigError(f"{', '.join(stray)} need(s) TLS_CERT_PATH, the server's certificate (PEM)")
        if settings.worker_auth_mode == "mtls-only":
            raise ConfigError(
                "WORKER_AUTH_MODE=mtls-only needs TLS with client certificates: set TLS_CERT_PATH, "
                "TLS_KEY_PATH and TLS_CA_PATH"
            )
        return {}
    if ca is None and settings.tls_require_client_cert:
        raise ConfigError("TLS_REQUIRE_CLIENT_CERT=true needs TLS_CA_PATH, the CA of the client certificates")
    if ca is None and settings.worker_auth_mode == "mtls-only":
        raise ConfigError("WORKER_AUTH_MODE=mtls-only needs TLS_CA_PATH, the CA of the workers' certificates")
    _check_loadable(cert, key, ca)
    if ca is None:
        requirement = ssl.CERT_NONE
    else:
        requirement = ssl.CERT_REQUIRED if settings.tls_require_client_cert else ssl.CERT_OPTIONAL
    return {
        "ssl_certfile": cert,
        "ssl_keyfile": key,
        "ssl_ca_certs": ca,
        "ssl_cert_reqs": requirement,
        "http": ClientCertificateProtocol,
    }


def _check_loadable(cert: str, key: str | None, ca: str | None) -> None:
    """Load the files as uvicorn will, so that a bad one fails the command with its variable's name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for name, path in (("TLS_CERT_PATH", cert), ("TLS_KEY_PATH", key), ("TLS_CA_PATH", ca)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{name}={path!r}: file not found")
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        where = "TLS_CERT_PATH" if key is None else "TLS_CERT_PATH and TLS_KEY_PATH"
        raise ConfigError(f"{where}: cannot load the server's certificate and key (PEM): {exc}") from None
    if ca is not None:
        try:
            context.load_verify_locations(ca)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"TLS_CA_PATH={ca!r}: cannot load the CA certificates (PEM): {exc}") from None


class ClientCertificateProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, adding the connection's TLS facts to each request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # asyncio (and uvloop) call this once the handshake is done, so the peer is known now.
        tls = tls_extension(transport.get_extra_info("ssl_object"))
        if tls is not None:
            self.app = _with_tls(self.app, tls)


def tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Any] | None:
    """The ASGI ``tls`` extension of a connection (None when it is not TLS).

    A client certificate is only ever there verified: a server that asks for one with a CA
    (``CERT_OPTIONAL`` or ``CERT_REQUIRED``) fails the handshake of a certificate the CA did
    not sign, so ``client_cert_error`` is always None.
    """
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    peer = ssl_object.getpeercert() if der else None
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": _rfc4514(peer["subject"]) if peer and "subject" in peer else None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": None,
    }


def _with_tls(app: ASGI3Application, tls: dict[str, Any]) -> ASGI3Application:
    async def with_tls(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        fields = cast("dict[str, Any]", scope)  # an HTTP scope: lifespan and websockets go elsewhere
        fields["extensions"] = {**(fields.get("extensions") or {}), "tls": tls}
        await app(scope, receive, send)

    return with_tls


def _rfc4514(subject: Any) -> str:
    """A certificate subject, as ``ssl.getpeercert()`` gives it, as an RFC 4514 string (its
    relative names in reverse order, ``+`` joining the parts of one)."""
    return ",".join(
        "+".join(f"{_SHORT_NAMES.get(key, key)}={_escape(value)}" for key, value in rdn)
        for rdn in reversed(subject)
    )


def _escape(value: str) -> str:
    escaped = "".join(
        f"\\{char}" if char in '"+,;<>\\' else "\\00" if char == "\0" else char for char in value
    )
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped
