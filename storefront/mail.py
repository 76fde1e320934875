"""Outgoing e-mail: SMTP when MAIL_URL is set, otherwise .eml files in the outbox folder."""

import logging
import smtplib
import ssl
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import current_app, render_template, url_for

log = logging.getLogger(__name__)


def external_url(endpoint: str, **values) -> str:
    """An absolute link for an e-mail, built from BASE_URL since jobs have no request."""
    with current_app.test_request_context(base_url=current_app.config["BASE_URL"]):
        return url_for(endpoint, _external=True, **values)


def compose(to: str, subject: str, template: str, **context) -> EmailMessage:
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4()}@storefront>"
    message.set_content(render_template(template, **context))
    return message


def send(message: EmailMessage) -> None:
    """Deliver one message by the configured transport."""
    url = current_app.config["MAIL_URL"]
    if url:
        _send_smtp(url, message)
    else:
        path = _write_outbox(Path(current_app.config["MAIL_OUTBOX"]), message)
        log.info("e-mail to %s (%s) written to %s", message["To"], message["Subject"], path)


def _write_outbox(folder: Path, message: EmailMessage) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
    path.write_bytes(bytes(message))
    return path


def _send_smtp(url: str, message: EmailMessage) -> None:
    """smtp://user:pass@host:587 uses STARTTLS; smtps:// uses TLS from the start.

    A password never goes out in clear: with credentials, an smtp:// server that offers no STARTTLS is
    refused rather than logged into.
    """
    parts = urlsplit(url)
    context = ssl.create_default_context()
    if parts.scheme == "smtps":
        server: smtplib.SMTP = smtplib.SMTP_SSL(
            parts.hostname, parts.port or 465, context=context, timeout=20
        )
    else:
        server = smtplib.SMTP(parts.hostname, parts.port or 587, timeout=20)
    with server:
        if parts.scheme == "smtp":
            # The extensions are only known after EHLO; has_extn() before it is always False.
            server.ehlo()
            if server.has_extn("starttls"):
                server.starttls(context=context)
                server.ehlo()  # RFC 3207: what the server offers may change once the channel is private
            elif parts.username:
                raise smtplib.SMTPNotSupportedError(
                    f"{parts.hostname} offers no STARTTLS; not sending the mail password in clear"
                )
        if parts.username:
            server.login(unquote(parts.username), unquote(parts.password or ""))
        server.send_message(message)
