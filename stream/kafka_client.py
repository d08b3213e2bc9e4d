"""Client keyword arguments for aiokafka, kafka-python and faust, built from KafkaSettings.

One place turns :class:`lsat.core.settings.KafkaSettings` (bootstrap servers, SASL, TLS) into the
spelling each client library expects, so every producer/consumer in the project reaches the same
broker the same way.

>>> from lsat.core.settings import KafkaSettings
>>> s = KafkaSettings(bootstrap_servers="k1:9092,k2:9092")
>>> kafka_python_kwargs(s)["bootstrap_servers"]
['k1:9092', 'k2:9092']
>>> faust_broker_url(s)
'kafka://k1:9092;k2:9092'
"""

from __future__ import annotations

import ssl
from typing import Any

from lsat.core.settings import KafkaSettings, reveal
from lsat.stream.errors import StreamError

__all__ = [
    "KafkaClientError",
    "aiokafka_kwargs",
    "bootstrap_list",
    "faust_broker_credentials",
    "faust_broker_url",
    "kafka_python_kwargs",
]

_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaClientError(StreamError, ValueError):
    """The Kafka settings cannot be turned into client arguments."""


def bootstrap_list(settings: KafkaSettings) -> list[str]:
    """The bootstrap servers as ``host:port`` strings (error when none is configured).

    >>> bootstrap_list(KafkaSettings(bootstrap_servers=" a:1 , b:2 "))
    ['a:1', 'b:2']
    """
    if not settings.bootstrap_servers:
        raise KafkaClientError(
            "no bootstrap_servers configured "
            "(start the embedded broker or set LSAT_KAFKA_BOOTSTRAP)"
        )
    servers = [s.strip() for s in settings.bootstrap_servers.split(",") if s.strip()]
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise KafkaClientError(f"bootstrap server {server!r} is not host:port")
    return servers


def _check_security(settings: KafkaSettings) -> str:
    protocol = settings.security_protocol.upper()
    if protocol not in _PROTOCOLS:
        raise KafkaClientError(
            f"security_protocol {settings.security_protocol!r} not in {_PROTOCOLS}"
        )
    if protocol.startswith("SASL"):
        mechanism = (settings.sasl_mechanism or "").upper()
        if mechanism not in _SASL_MECHANISMS:
            raise KafkaClientError(
                f"sasl_mechanism {settings.sasl_mechanism!r} not in {_SASL_MECHANISMS}"
            )
        if not settings.sasl_username or settings.sasl_password is None:
            raise KafkaClientError(f"{protocol} needs sasl_username and sasl_password")
    return protocol


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.ssl_cafile)


def kafka_python_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for ``kafka.KafkaProducer`` / ``KafkaConsumer`` / ``KafkaAdminClient``.

    >>> kw = kafka_python_kwargs(KafkaSettings(bootstrap_servers="k:9093",
    ...     security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
    ...     sasl_username="u", sasl_password="p"))
    >>> kw["security_protocol"], kw["sasl_plain_username"]
    ('SASL_SSL', 'u')
    """
    protocol = _check_security(settings)
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap_list(settings),
        "security_protocol": protocol,
    }
    if protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = (settings.sasl_mechanism or "").upper()
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = reveal(settings.sasl_password)
    if protocol.endswith("SSL") and settings.ssl_cafile:
        kwargs["ssl_cafile"] = settings.ssl_cafile
    return kwargs


def aiokafka_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for ``aiokafka.AIOKafkaProducer`` / ``AIOKafkaConsumer``.

    >>> aiokafka_kwargs(KafkaSettings(bootstrap_servers="k:1"))
    {'bootstrap_servers': 'k:1', 'security_protocol': 'PLAINTEXT'}
    """
    protocol = _check_security(settings)
    kwargs: dict[str, Any] = {
        "bootstrap_servers": ",".join(bootstrap_list(settings)),
        "security_protocol": protocol,
    }
    if protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = (settings.sasl_mechanism or "").upper()
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = reveal(settings.sasl_password)
    if protocol.endswith("SSL"):
        kwargs["ssl_context"] = _ssl_context(settings)
    return kwargs


def faust_broker_url(settings: KafkaSettings) -> str:
    """The ``broker=`` URL for ``faust.App`` (``kafka://host:port;host:port``)."""
    return "kafka://" + ";".join(bootstrap_list(settings))


def faust_broker_credentials(settings: KafkaSettings) -> Any:
    """The ``broker_credentials=`` value for ``faust.App`` (``None`` for PLAINTEXT)."""
    protocol = _check_security(settings)
    if protocol == "PLAINTEXT":
        return None
    import faust

    if protocol == "SSL":
        return faust.SSLCredentials(_ssl_context(settings))
    from faust.auth import SASLCredentials

    return SASLCredentials(
        username=settings.sasl_username,
        password=reveal(settings.sasl_password),
        ssl_context=_ssl_context(settings) if protocol == "SASL_SSL" else None,
        mechanism=(settings.sasl_mechanism or "").upper(),
    )
