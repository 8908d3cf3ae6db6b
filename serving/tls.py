"""HTTPS for `textclf serve`: the certificate and key are checked before the server binds."""

from __future__ import annotations

import ssl
from typing import Any

from pipeline.config import ServingConfig


class TlsConfigError(ValueError):
    """The certificate or key cannot be used."""


def uvicorn_tls_options(settings: ServingConfig) -> dict[str, Any]:
    """uvicorn's ssl_* options (empty: plain HTTP), after loading the pair once.

    Python 3.10's server context refuses anything older than TLS 1.2.
    """
    if not settings.tls_cert_file:
        return {}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as error:
        raise TlsConfigError(f"serving.tls_cert_file {settings.tls_cert_file} and "
                             f"serving.tls_key_file {settings.tls_key_file} cannot be used: "
                             f"{getattr(error, 'strerror', None) or error}") from error
    return {"ssl_certfile": settings.tls_cert_file, "ssl_keyfile": settings.tls_key_file}
