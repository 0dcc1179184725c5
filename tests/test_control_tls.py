"""The control API over HTTPS: a certificate and key from PEM files, TLS 1.2 or newer, clear errors."""

from __future__ import annotations

import asyncio
import datetime
import http.client
import ipaddress
import json
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bleepline.audio.codecs import PCMU
from bleepline.control import make_app, start_control, tls_context
from bleepline.redact.policy import RedactionPolicy
from bleepline.server import RelayServer
from bleepline.store.keys import load_recipient


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "control.crt", directory / "control.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_the_control_api_serves_https(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    cert, key = self_signed(tmp_path)
    server = RelayServer(
        codec=PCMU,
        recipients=[load_recipient(key_pair[0])],
        store=tmp_path,
        policy=RedactionPolicy(),
        listener_factory=lambda rate: None,
        models={},
    )
    client = ssl.create_default_context(cafile=str(cert))

    async def main() -> tuple[int, dict[str, object], bool]:
        app = make_app(server, token="t0ken", rtp_host="127.0.0.1", rtp_ports=range(40000, 40001))
        runner, (host, port) = await start_control(app, "127.0.0.1", 0, tls=tls_context(str(cert), str(key)))
        try:

            def fetch() -> tuple[int, dict[str, object], bool]:
                https = http.client.HTTPSConnection(host, port, context=client, timeout=5)
                https.request("GET", "/healthz")
                response = https.getresponse()
                result = response.status, json.loads(response.read())
                https.close()
                plain = http.client.HTTPConnection(host, port, timeout=5)
                try:
                    plain.request("GET", "/healthz")
                    plain.getresponse()
                    refused = False
                except (http.client.HTTPException, OSError):
                    refused = True  # plain HTTP on the TLS port gets nowhere
                finally:
                    plain.close()
                return (*result, refused)

            return await asyncio.to_thread(fetch)
        finally:
            await runner.cleanup()

    status, body, plain_refused = asyncio.run(main())
    assert status == 200
    assert body["status"] == "ok"
    assert plain_refused


def test_a_missing_or_wrong_certificate_is_one_line(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with pytest.raises(ValueError, match="cannot load the TLS certificate") as missing:
        tls_context(str(tmp_path / "nope.crt"), str(key))
    assert "\n" not in str(missing.value)
    with pytest.raises(ValueError, match="cannot load the TLS certificate"):
        tls_context(str(key), str(cert))  # the two swapped
