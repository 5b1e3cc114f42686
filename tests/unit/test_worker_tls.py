"""TLS settings: uvicorn's options from TLS_*, the client certificate's CN in the ASGI scope, and
the settings' errors; certificates made by the test (trustme), handshakes in memory."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trustme

from chronik._tls import _rfc4514, tls_extension, uvicorn_tls_options
from chronik.api.worker_auth import certificate_worker_id
from chronik.core.errors import ConfigError
from chronik.settings import Settings


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files(authority: trustme.CA, tmp_path: Path) -> dict[str, str]:
    server = authority.issue_cert("localhost")
    paths = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem", "key": tmp_path / "server.key"}
    authority.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    return {name: str(path) for name, path in paths.items()}


def tls_settings(files: dict[str, str], **more: Any) -> Settings:
    return Settings(tls_cert_path=files["cert"], tls_key_path=files["key"], **more)


def test_plain_http_without_tls_settings() -> None:
    assert uvicorn_tls_options(Settings()) == {}


def test_a_ca_asks_for_client_certificates_and_may_require_them(files: dict[str, str]) -> None:
    assert uvicorn_tls_options(tls_settings(files))["ssl_cert_reqs"] == ssl.CERT_NONE
    asking = uvicorn_tls_options(tls_settings(files, tls_ca_path=files["ca"]))
    assert asking["ssl_cert_reqs"] == ssl.CERT_OPTIONAL and asking["ssl_ca_certs"] == files["ca"]
    requiring = uvicorn_tls_options(
        tls_settings(files, tls_ca_path=files["ca"], tls_require_client_cert=True)
    )
    assert requiring["ssl_cert_reqs"] == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tls_key_path": "k.pem"}, "TLS_KEY_PATH need(s) TLS_CERT_PATH"),
        ({"tls_require_client_cert": True}, "TLS_REQUIRE_CLIENT_CERT need(s) TLS_CERT_PATH"),
        ({"worker_auth_mode": "mtls-only"}, "WORKER_AUTH_MODE=mtls-only needs TLS"),
    ],
)
def test_settings_that_do_not_fit_together(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        uvicorn_tls_options(Settings(**settings))


def test_tls_settings_that_need_a_ca_or_a_file(files: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TLS_REQUIRE_CLIENT_CERT=true needs TLS_CA_PATH"):
        uvicorn_tls_options(tls_settings(files, tls_require_client_cert=True))
    with pytest.raises(ConfigError, match="mtls-only needs TLS_CA_PATH"):
        uvicorn_tls_options(tls_settings(files, worker_auth_mode="mtls-only"))
    with pytest.raises(ConfigError, match=r"TLS_CA_PATH='.*nope.pem': file not found"):
        uvicorn_tls_options(tls_settings(files, tls_ca_path=str(tmp_path / "nope.pem")))
    with pytest.raises(ConfigError, match="TLS_CERT_PATH and TLS_KEY_PATH: cannot load"):
        uvicorn_tls_options(msgspec.structs.replace(tls_settings(files), tls_key_path=files["ca"]))


def test_the_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {"TLS_CERT_PATH": "c.pem", "TLS_CA_PATH": "ca.pem", "TLS_REQUIRE_CLIENT_CERT": "true",
         "WORKER_AUTH_MODE": "MTLS-ONLY", "WORKER_TOKEN_TTL_SECONDS": "600"}
    )  # fmt: skip
    assert (settings.tls_cert_path, settings.tls_key_path, settings.tls_ca_path) == ("c.pem", None, "ca.pem")
    assert settings.tls_require_client_cert and settings.worker_auth_mode == "mtls-only"
    assert settings.worker_token_ttl_seconds == 600.0
    defaults = Settings.from_env({})
    assert (defaults.worker_auth_mode, defaults.worker_token_ttl_seconds) == ("mixed", 3600.0)
    assert defaults.tls_cert_path is None and not defaults.tls_require_client_cert
    with pytest.raises(
        ConfigError, match="WORKER_AUTH_MODE='both' must be one of mixed, mtls-only, token-only"
    ):
        Settings.from_env({"WORKER_AUTH_MODE": "both"})
    with pytest.raises(ConfigError, match="TLS_REQUIRE_CLIENT_CERT='maybe'"):
        Settings.from_env({"TLS_REQUIRE_CLIENT_CERT": "maybe"})
    with pytest.raises(ConfigError, match="WORKER_TOKEN_TTL_SECONDS='0' must be at least 1"):
        Settings.from_env({"WORKER_TOKEN_TTL_SECONDS": "0"})


# -- the client certificate in the scope ------------------------------------------


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> ssl.SSLObject:
    """Run a TLS handshake in memory; the server's side of the connection."""
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = server.wrap_bio(server_in, server_out, server_side=True)
    client_side = client.wrap_bio(client_in, client_out, server_hostname="localhost")
    done: set[int] = set()
    for _ in range(20):
        for side, outgoing, incoming in (
            (client_side, client_out, server_in),
            (server_side, server_out, client_in),
        ):
            try:
                side.do_handshake()
                done.add(id(side))
            except ssl.SSLWantReadError:
                pass
            incoming.write(outgoing.read())
        if len(done) == 2:
            return server_side
    raise AssertionError("the handshake did not finish")


def server_context(files: dict[str, str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files["cert"], files["key"])
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(files["ca"])
    return context


def test_the_tls_extension_names_the_verified_client(authority: trustme.CA, files: dict[str, str]) -> None:
    client = ssl.create_default_context(cafile=files["ca"])
    authority.issue_cert(common_name="gpu-worker-01").configure_cert(client)
    extension = tls_extension(handshake(server_context(files), client))
    assert extension is not None
    assert extension["client_cert_name"].startswith("CN=gpu-worker-01,")
    assert extension["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert extension["tls_version"] in (0x0303, 0x0304) and extension["client_cert_error"] is None
    assert certificate_worker_id({"extensions": {"tls": extension}}) == "gpu-worker-01"


def test_without_a_client_certificate_there_is_no_worker(files: dict[str, str]) -> None:
    extension = tls_extension(
        handshake(server_context(files), ssl.create_default_context(cafile=files["ca"]))
    )
    assert extension is not None and extension["client_cert_name"] is None
    assert certificate_worker_id({"extensions": {"tls": extension}}) is None
    assert certificate_worker_id({"type": "http"}) is None
    assert tls_extension(None) is None


@pytest.mark.parametrize(
    ("subject", "name", "worker"),
    [
        (((("organizationName", "ACME"),), (("commonName", "w1"),)), "CN=w1,O=ACME", "w1"),
        (((("commonName", "a,CN=b"),),), "CN=a\\,CN=b", "a,CN=b"),
        (((("commonName", "w+1"), ("organizationalUnitName", "x")),), "CN=w\\+1+OU=x", "w+1"),
        (((("commonName", " #lead"),),), "CN=\\ #lead", " #lead"),
        (((("organizationName", "no common name"),),), "O=no common name", None),
        (((("commonName", "one"),), (("commonName", "two"),)), "CN=two,CN=one", None),
    ],
)
def test_subjects_round_trip_through_rfc_4514(subject: Any, name: str, worker: str | None) -> None:
    assert _rfc4514(subject) == name
    assert certificate_worker_id({"extensions": {"tls": {"client_cert_name": name}}}) == worker


def test_an_escaped_hex_pair_is_read() -> None:
    assert certificate_worker_id({"extensions": {"tls": {"client_cert_name": "CN=w\\2C1"}}}) == "w,1"
