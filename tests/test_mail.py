"""E-mail delivery over real SMTP (MAIL_URL) and into the outbox folder (the embedded default)."""

import socket

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

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
