"""iMIP (RFC 6047): invitations, cancellations and replies for attendees elsewhere go out
as mail through the configured SMTP server. A real SMTP server (aiosmtpd) runs in the test
process and receives them; the tests read what arrived."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from helpers import free_port
from sched_data import (
    Site,
    attendee_line,
    calendar,
    lines_of,
    meeting,
    param,
    site_config,
    start_site,
    unfolded,
)

from davserver.config import SmtpConfig

ZED = "mailto:zed@elsewhere.org"
SENDER = "calendar@example.org"


@dataclass
class Mailbox:
    """What the SMTP server received."""

    mails: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:  # fmt: skip
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            with self.lock:
                self.logins.append((user, password))
            return AuthResult(success=(user, password) == ("davserver", "s3cret"))
        return AuthResult(success=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on a loopback port, in a thread of its own (plain, with AUTH)."""
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box.authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture(params=["filesystem", "git"])
def mail_config(request: pytest.FixtureRequest, tmp_path: Path, smtp: tuple[Mailbox, int]) -> Any:
    password = tmp_path / "smtp-password"
    password.write_text("s3cret\n")
    settings = SmtpConfig(
        host="127.0.0.1", port=smtp[1], tls="none", username="davserver",
        password_file=password, sender=SENDER, timeout=5.0,
    )  # fmt: skip
    return site_config(tmp_path, request.param, smtp=settings)


@pytest.fixture
async def mail_site(mail_config: Any, aiohttp_client: Any, tmp_path: Path) -> Site:
    return await start_site(aiohttp_client, mail_config, tmp_path)


async def other_site(aiohttp_client: Any, tmp_path: Path, settings: SmtpConfig) -> Site:
    """A site on the filesystem with these mail settings (its files written in a thread)."""
    config = await asyncio.to_thread(site_config, tmp_path, "filesystem", settings)
    return await start_site(aiohttp_client, config, tmp_path)


def calendar_part(msg: EmailMessage) -> tuple[str, bytes]:
    """The method and bytes of the text/calendar part of a mail."""
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            return part.get_param("method") or "", part.get_payload(decode=True)
    raise AssertionError("no text/calendar part")


async def test_an_invitation_goes_out_by_mail(mail_site: Site, smtp: tuple[Mailbox, int]) -> None:
    box, _ = smtp
    ans = await mail_site.put(
        "ann", calendar("ann") + "m1.ics", meeting("m1", attendees=("bob", ZED))
    )
    assert ans.status == 201
    [(sender, rcpts, msg)] = box.mails
    assert box.logins == [("davserver", "s3cret")]
    assert sender == SENDER and rcpts == ["zed@elsewhere.org"]
    assert msg["From"] == SENDER
    assert msg["To"] == "zed@elsewhere.org"
    assert msg["Reply-To"] == "ann@example.org"
    assert msg["Subject"] == "Invitation: Meeting"
    assert msg["Message-ID"] and msg["Date"]
    assert msg.get_content_type() == "multipart/mixed"
    method, data = calendar_part(msg)
    assert method == "REQUEST"
    assert "METHOD:REQUEST" in unfolded(data)
    assert "UID:m1" in unfolded(data)
    assert not any("SCHEDULE-STATUS" in line for line in unfolded(data))
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_payload(decode=True) == data
    stored = await mail_site.get("ann", calendar("ann") + "m1.ics")
    assert param(attendee_line(stored, ZED), "SCHEDULE-STATUS") == "1.1"
    assert param(attendee_line(stored, "bob"), "SCHEDULE-STATUS") == "1.2"

    # Cancelled: a CANCEL follows.
    assert (await mail_site.request("DELETE", calendar("ann") + "m1.ics", "ann")).status == 204
    msg = box.mails[-1][2]
    assert msg["Subject"] == "Cancelled: Meeting"
    method, data = calendar_part(msg)
    assert method == "CANCEL" and "STATUS:CANCELLED" in unfolded(data)


async def test_a_reply_to_an_organizer_elsewhere_goes_out_by_mail(
    mail_site: Site, smtp: tuple[Mailbox, int]
) -> None:
    """bob keeps an invitation from zed (written by his client) and accepts it."""
    box, _ = smtp
    data = meeting("z1", organizer=ZED, attendees=("bob",))
    assert (await mail_site.put("bob", calendar("bob") + "z1.ics", data)).status == 201
    assert box.mails == []  # nothing answered yet
    accepted = data.replace(b"CN=bob;PARTSTAT=NEEDS-ACTION", b"CN=bob;PARTSTAT=ACCEPTED")
    assert (await mail_site.put("bob", calendar("bob") + "z1.ics", accepted)).status == 204
    [(_, rcpts, msg)] = box.mails
    assert rcpts == ["zed@elsewhere.org"]
    assert msg["Reply-To"] == "bob@example.org"
    method, reply = calendar_part(msg)
    assert method == "REPLY"
    [who] = lines_of(reply, "ATTENDEE")
    assert param(who, "PARTSTAT") == "ACCEPTED" and who.endswith("mailto:bob@example.org")
    stored = await mail_site.get("bob", calendar("bob") + "z1.ics")
    assert param(lines_of(stored, "ORGANIZER")[0], "SCHEDULE-STATUS") == "1.1"


async def test_a_mail_server_that_cannot_be_reached(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = free_port()
    settings = SmtpConfig(host="127.0.0.1", port=closed, tls="none", sender=SENDER, timeout=2.0)
    site = await other_site(aiohttp_client, tmp_path, settings)
    ans = await site.put("ann", calendar("ann") + "m1.ics", meeting("m1", attendees=(ZED,)))
    assert ans.status == 201
    stored = await site.get("ann", calendar("ann") + "m1.ics")
    assert param(attendee_line(stored, ZED), "SCHEDULE-STATUS") == "5.1"
    assert any("not sent" in r.getMessage() for r in caplog.records)


async def test_a_refused_login_is_a_failed_delivery(
    aiohttp_client: Any, tmp_path: Path, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    password = tmp_path / "wrong"
    await asyncio.to_thread(password.write_text, "wrong\n")
    settings = SmtpConfig(
        host="127.0.0.1", port=port, tls="none", username="davserver", password_file=password,
        sender=SENDER,
    )  # fmt: skip
    site = await other_site(aiohttp_client, tmp_path, settings)
    await site.put("ann", calendar("ann") + "m1.ics", meeting("m1", attendees=(ZED,)))
    assert box.mails == []
    stored = await site.get("ann", calendar("ann") + "m1.ics")
    assert param(attendee_line(stored, ZED), "SCHEDULE-STATUS") == "5.1"


async def test_starttls_that_the_server_lacks_sends_nothing(
    aiohttp_client: Any, tmp_path: Path, smtp: tuple[Mailbox, int]
) -> None:
    """With tls = "starttls" the password never travels in clear: a server without STARTTLS
    gets no mail."""
    box, port = smtp
    settings = SmtpConfig(host="127.0.0.1", port=port, tls="starttls", sender=SENDER)
    site = await other_site(aiohttp_client, tmp_path, settings)
    await site.put("ann", calendar("ann") + "m1.ics", meeting("m1", attendees=(ZED,)))
    assert box.mails == []
    stored = await site.get("ann", calendar("ann") + "m1.ics")
    assert param(attendee_line(stored, ZED), "SCHEDULE-STATUS") == "5.1"
