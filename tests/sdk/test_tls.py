"""The official OpenAI and Anthropic SDKs over HTTPS (issue 14, item 4):
a CA and a server certificate made here, a gateway with a TLS listener,
and each SDK trusting only that CA. Streaming included."""

import datetime
import ipaddress
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import anthropic
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import BIN, KEY, _config, _free_port

HELLO = "Hello from the mock upstream! You said: hi there"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_pki(dir):
    """A CA, and a certificate it signs for localhost and 127.0.0.1."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("modelswitch sdk test CA"))
        .issuer_name(_name("modelswitch sdk test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (dir / "ca.pem").write_bytes(ca.public_bytes(pem))
    (dir / "server.pem").write_bytes(cert.public_bytes(pem))
    (dir / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return dir / "ca.pem"


@pytest.fixture(scope="module")
def https(stack):
    """The gateway on a plain and a TLS port, with the shared mock: the
    HTTPS base URL and the CA file."""
    mock_port = int(stack.mock.rsplit(":", 1)[1])
    dir = Path(tempfile.mkdtemp(prefix="modelswitch-sdk-tls-"))
    ca = _write_pki(dir)
    for _ in range(5):
        port, tls_port = _free_port(), _free_port()
        text = _config(mock_port, port).replace(
            "[server]\n", f'[server]\ntls_listen = "127.0.0.1:{tls_port}"\n', 1
        )
        text += '\n[server.tls]\ncert_path = "server.pem"\nkey_path = "server.key"\n'
        cfg = dir / "gateway.toml"
        cfg.write_text(text)
        gw = subprocess.Popen(
            [str(BIN / "modelswitch"), "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline and gw.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.03)
        if gw.poll() is None and time.time() < deadline:
            try:
                yield f"https://localhost:{tls_port}", str(ca)
            finally:
                gw.kill()
                gw.wait(timeout=5)
            return
        gw.kill()
        gw.wait(timeout=5)
    raise RuntimeError("gateway with TLS did not start")


def _verify(ca):
    return ssl.create_default_context(cafile=ca)


@pytest.fixture
def oa(https):
    base, ca = https
    return openai.OpenAI(
        base_url=f"{base}/v1",
        api_key=KEY,
        max_retries=0,
        timeout=20,
        http_client=openai.DefaultHttpxClient(verify=_verify(ca)),
    )


@pytest.fixture
def an(https):
    base, ca = https
    return anthropic.Anthropic(
        base_url=base,
        api_key=KEY,
        max_retries=0,
        timeout=20,
        http_client=anthropic.DefaultHttpxClient(verify=_verify(ca)),
    )


def test_openai_over_https(oa):
    r = oa.chat.completions.create(model="oa", messages=[{"role": "user", "content": "hi there"}])
    assert r.choices[0].message.content == HELLO


def test_openai_streams_over_https(oa):
    with oa.chat.completions.stream(model="oa", messages=[{"role": "user", "content": "hi there"}]) as s:
        text = "".join(e.delta for e in s if e.type == "content.delta")
        final = s.get_final_completion()
    assert text == HELLO
    assert final.choices[0].finish_reason == "stop"


def test_anthropic_over_https(an):
    r = an.messages.create(model="an", max_tokens=64, messages=[{"role": "user", "content": "hi there"}])
    assert r.content[0].text == HELLO


def test_anthropic_streams_over_https(an):
    with an.messages.stream(model="an", max_tokens=64, messages=[{"role": "user", "content": "hi there"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == HELLO
    assert final.stop_reason == "end_turn"


def test_a_client_without_the_ca_refuses_the_gateway(https):
    base, _ = https
    c = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=10)
    with pytest.raises(openai.APIConnectionError):
        c.models.list()
