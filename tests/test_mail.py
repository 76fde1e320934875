"""E-mail delivery over real SMTP (MAIL_URL) and into the outbox folder (the embedded default)."""

import smtplib
import socket
import ssl
import subprocess

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from aiosmtpd.smtp import AuthResult

from storefront import mail


class Inbox(Message):
    def __init__(self):
        super().__init__()
        self.messages = []

    def handle_message(self, message):
        self.messages.append(message)


@pytest.fixture
def smtp_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def test_mail_goes_out_over_smtp_when_mail_url_is_set(app, smtp_server, monkeypatch):
    inbox, port = smtp_server
    monkeypatch.setitem(app.config, "MAIL_URL", f"smtp://127.0.0.1:{port}")
    with app.test_request_context():
        mail.send(mail.compose("shopper@example.com", "Hello", "emails/verify.txt", link="http://x/verify"))
    [message] = inbox.messages
    assert message["To"] == "shopper@example.com" and message["Subject"] == "Hello"
    assert "http://x/verify" in message.get_payload()


def test_without_mail_url_mail_lands_in_the_outbox(app, outbox):
    with app.test_request_context():
        mail.send(mail.compose("shopper@example.com", "Hello", "emails/verify.txt", link="http://x/verify"))
    [path] = outbox.glob("*.eml")
    assert b"Subject: Hello" in path.read_bytes()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, and the same file as the client's trusted CA bundle."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class Logins:
    """An authenticator that records each AUTH and whether the channel was encrypted by then."""

    def __init__(self):
        self.seen = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.seen.append((auth_data.login.decode(), auth_data.password.decode(), session.ssl is not None))
        return AuthResult(success=auth_data.password == b"s3cret")


def _tls_server(tls_files, *, offer_starttls: bool):
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox, logins = Inbox(), Logins()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context if offer_starttls else None,
        require_starttls=offer_starttls,
        # Without STARTTLS the server would take a password in clear: only the client can refuse to send it.
        auth_require_tls=offer_starttls,
        authenticator=logins,
    )
    return controller, inbox, logins, port


def _send_hello(app):
    with app.test_request_context():
        mail.send(mail.compose("shopper@example.com", "Hello", "emails/verify.txt", link="http://x/verify"))


def test_the_mail_password_goes_out_only_after_starttls(app, tls_files, monkeypatch):
    controller, inbox, logins, port = _tls_server(tls_files, offer_starttls=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))  # the client trusts the test certificate
    monkeypatch.setitem(app.config, "MAIL_URL", f"smtp://shop%40example.com:s3cret@127.0.0.1:{port}")
    controller.start()
    try:
        _send_hello(app)
    finally:
        controller.stop()
    assert logins.seen == [("shop@example.com", "s3cret", True)]
    [message] = inbox.messages
    assert message["Subject"] == "Hello"


def test_a_server_without_starttls_never_sees_the_password(app, tls_files, monkeypatch):
    controller, inbox, logins, port = _tls_server(tls_files, offer_starttls=False)
    monkeypatch.setitem(app.config, "MAIL_URL", f"smtp://shop:s3cret@127.0.0.1:{port}")
    controller.start()
    try:
        with pytest.raises(smtplib.SMTPNotSupportedError):
            _send_hello(app)
    finally:
        controller.stop()
    assert logins.seen == [] and inbox.messages == []
