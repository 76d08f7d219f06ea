"""MAX settings, ADMINS with max:<id>, and TLS with an extra trusted CA (MAX_CA_FILE)."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest

from bot.channel import ChannelSetupError
from bot.config import DEFAULT_MAX_API_URL, ConfigError, MaxSettings, load_settings
from bot.max import MaxChannel
from tests import fake_max_api as fake
from tests.max_harness import make_channel

MAX_VARS = ("MAX_TOKEN", "MAX_API_URL", "MAX_WEBHOOK_SECRET", "MAX_CA_FILE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in (*MAX_VARS, "ADMINS"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_point_at_the_official_api():
    settings = load_settings(env_file=None).max
    assert settings.token is None and settings.webhook_secret is None
    assert settings.api_url == DEFAULT_MAX_API_URL == "https://platform-api2.max.ru"
    assert settings.ca_file is None


def test_values_from_the_environment(monkeypatch, tmp_path):
    ca = tmp_path / "russian_trusted_root_ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("MAX_TOKEN", "f9LHodD0cOI-secret")
    monkeypatch.setenv("MAX_API_URL", "http://127.0.0.1:8090/")
    monkeypatch.setenv("MAX_WEBHOOK_SECRET", "hook_Secret-1")
    monkeypatch.setenv("MAX_CA_FILE", str(ca))
    monkeypatch.setenv("ADMINS", "tg:1, max:77")
    settings = load_settings(env_file=None)
    assert settings.max.api_url == "http://127.0.0.1:8090"
    assert settings.max.ca_file == ca
    assert settings.max.webhook_secret.get_secret_value() == "hook_Secret-1"
    assert [(a.platform, a.user_id) for a in settings.app.admins] == [("tg", "1"), ("max", "77")]
    assert "f9LHodD0cOI" not in repr(settings) and "hook_Secret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_API_URL", "platform-api2.max.ru"),
        ("MAX_WEBHOOK_SECRET", "a b c d e"),
        ("MAX_WEBHOOK_SECRET", "abc"),
        ("MAX_CA_FILE", "/nonexistent/ca.pem"),
        ("ADMINS", "max:abc"),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings(env_file=None)


def test_a_channel_needs_a_token():
    with pytest.raises(ChannelSetupError, match="MAX_TOKEN"):
        MaxChannel.from_settings(MaxSettings(_env_file=None))


def test_a_ca_file_that_is_not_pem_is_a_setup_error(tmp_path):
    ca = tmp_path / "ca.cer"
    ca.write_bytes(b"0\x82\x05\x00 not a pem certificate")
    settings = MaxSettings(_env_file=None, MAX_TOKEN="t", MAX_CA_FILE=str(ca))
    with pytest.raises(ChannelSetupError, match="MAX_CA_FILE"):
        MaxChannel.from_settings(settings)


# --- TLS ------------------------------------------------------------------------------------

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A root CA standing in for the Russian Trusted Root CA, and a server certificate for
    127.0.0.1 signed by it."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    d = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=Test Trusted Root CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # fmt: skip
    _openssl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1",
             cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf",
             cwd=d)  # fmt: skip
    return d


@pytest.fixture
async def tls_server(pki):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "srv.pem", pki / "srv.key")
    server = await fake.FakeMaxApi(ssl_context=context).start()
    yield server
    await server.close()


@needs_openssl
async def test_an_untrusted_certificate_is_refused_with_advice(tls_server):
    channel = make_channel(tls_server.base_url)
    with pytest.raises(ChannelSetupError, match="MAX_CA_FILE") as caught:
        await channel.start()
    assert "Russian Trusted Root CA" in str(caught.value)
    assert tls_server.requests == []  # nothing went over the unverified connection
    await channel.close()


@needs_openssl
async def test_max_ca_file_adds_the_root_ca(tls_server, pki, monkeypatch):
    monkeypatch.setenv("MAX_TOKEN", fake.TOKEN)
    monkeypatch.setenv("MAX_API_URL", tls_server.base_url)
    monkeypatch.setenv("MAX_CA_FILE", str(pki / "ca.pem"))
    channel = MaxChannel.from_settings(load_settings(env_file=None).max)
    try:
        await channel.start()
        assert channel.me["username"] == "test_bot"
    finally:
        await channel.close()
