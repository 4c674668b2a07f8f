"""iMIP (RFC 6047): an iTIP message to a calendar user elsewhere goes out as mail through
the configured SMTP server.

The mail is ``multipart/mixed``: a ``multipart/alternative`` of a short text and the
message as ``text/calendar; method=...`` (what mail programs act on), and the same
message as an ``invite.ics`` attachment. It is sent with the standard library's smtplib
on the mailer's own worker threads: one short connection per message, no dependency,
the event loop never waits on the network, and a slow mail server holds up no other
work off the loop (parsing, hashing). The result is the SCHEDULE-STATUS of the
recipient (RFC 6638 §3.2.9).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from davserver.runtime.threads import WorkerPool

log = logging.getLogger("davserver.scheduling")

SENT = "1.1"
"""Handed to the mail server: sent, not known to be delivered."""
TRY_LATER = "5.1"
"""The mail server could not be reached or refused for now."""
NO_WAY = "5.2"
"""No way to deliver (no mail server configured)."""
NOT_A_USER = "3.7"
"""The mail server refused the recipient."""
SUBJECTS = {"REQUEST": "Invitation", "CANCEL": "Cancelled", "REPLY": "Reply"}


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the mail server (the ``[smtp]`` table)."""

    host: str = ""
    port: int = 587
    tls: str = "starttls"
    """``starttls`` (upgrade a plain connection), ``tls`` (TLS from the start) or ``none``."""
    username: str = ""
    password_file: Path | None = None
    """Where the password is (read at each sending, so a changed one needs no restart)."""
    sender: str = ""
    timeout: float = 10.0


def imip_message(
    method: str,
    calendar: bytes,
    *,
    sender: str,
    recipient: str,
    reply_to: str,
    summary: str,
) -> EmailMessage:
    """The mail carrying an iTIP message (``calendar``) to ``recipient`` (a mail address)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Reply-To"] = reply_to
    msg["Subject"] = f"{SUBJECTS.get(method, method.title())}: {summary or '(no title)'}"
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
    text = (
        f"{SUBJECTS.get(method, method.title())}: {summary or '(no title)'}\n\n"
        "Your calendar program reads the attached invitation.\n"
    )
    msg.set_content(text)
    msg.add_alternative(
        calendar, maintype="text", subtype="calendar", params={"method": method, "charset": "utf-8"}
    )
    msg.make_mixed()
    msg.add_attachment(calendar, maintype="application", subtype="ics", filename="invite.ics")
    return msg


def _send(settings: SmtpSettings, msg: EmailMessage) -> str:
    """Send one mail (blocking: run it in a worker thread); its SCHEDULE-STATUS."""
    context = ssl.create_default_context()
    client: smtplib.SMTP
    try:
        if settings.tls == "tls":
            client = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            if settings.tls == "starttls":
                client.starttls(context=context)
            if settings.username:
                password = ""
                if settings.password_file is not None:
                    password = settings.password_file.read_text(encoding="utf-8").strip()
                client.login(settings.username, password)
            client.send_message(msg, from_addr=settings.sender)
    except smtplib.SMTPRecipientsRefused as exc:
        log.warning("iMIP to %s refused by the mail server: %s", msg["To"], exc.recipients)
        return NOT_A_USER
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("iMIP to %s not sent: %s", msg["To"], exc)
        return TRY_LATER
    return SENT


class Mailer:
    """Sends iMIP mail through the configured server (none: nothing can be sent)."""

    def __init__(self, settings: SmtpSettings, threads: int = 2) -> None:
        self.settings = settings
        self._threads = threads
        self._pool: WorkerPool | None = None

    @property
    def configured(self) -> bool:
        """Whether a mail server is configured."""
        return bool(self.settings.host)

    async def send(self, msg: EmailMessage) -> str:
        """Send a mail; the recipient's SCHEDULE-STATUS."""
        if not self.configured:
            return NO_WAY
        if self._pool is None:
            self._pool = WorkerPool(self._threads, "smtp")
        return await self._pool.submit(asyncio.get_running_loop(), _send, self.settings, msg)

    def close(self) -> None:
        """Stop the mailer's threads."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
