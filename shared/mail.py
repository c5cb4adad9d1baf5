"""Outgoing mail, plainly: one message over SMTP (smtplib) to the configured relay (`SMTP_HOST`, `SMTP_PORT`,
`MAIL_FROM`; optional `SMTP_USER`/`SMTP_PASSWORD` with STARTTLS when `SMTP_STARTTLS=1`). No SMTP host configured:
nothing is sent and `send` says so (False), so a demo without a relay still runs."""
import logging
import smtplib
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from flask import current_app

log = logging.getLogger("orderloom.mail")


def send(to: str, subject: str, body: str, attachments=()) -> bool:
    """Send one plain-text UTF-8 message, with `attachments` ((file name, (maintype, subtype), bytes) each) when
    given; True when the relay accepted it, False when no relay is configured. A relay that refuses or cannot be
    reached raises (smtplib.SMTPException / OSError): the caller retries."""
    config = current_app.config
    host = config.get("SMTP_HOST") or ""
    if not host:
        log.info("mail to=%s not sent: no SMTP_HOST configured", to.split("@")[-1])
        return False
    message = EmailMessage()
    message["From"] = formataddr((config.get("MAIL_FROM_NAME") or "Orderloom", config["MAIL_FROM"]))
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=config["MAIL_FROM"].split("@")[-1])
    message.set_content(body)
    for filename, (maintype, subtype), content in attachments:
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    with smtplib.SMTP(host, int(config.get("SMTP_PORT") or 25), timeout=float(config.get("SMTP_TIMEOUT") or 10)) as smtp:
        if config.get("SMTP_STARTTLS"):
            smtp.starttls()
        if config.get("SMTP_USER"):
            smtp.login(config["SMTP_USER"], config.get("SMTP_PASSWORD") or "")
        smtp.send_message(message)
    return True
