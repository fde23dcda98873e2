"""A real SMTP server for hubmon's email tests (aiosmtpd), on loopback.

Usage: smtp_sink.py DIR
Listens on 127.0.0.1 on a free port, prints "PORT <n>" once ready, and writes every accepted
message to DIR as <n>.eml (the raw message) and <n>.json (envelope and MIME parts, parsed with
Python's email package). Recipients whose local part starts with "reject" are refused with a
permanent 550; those starting with "busy" with a transient 451. AUTH is offered only when
SMTP_SINK_USER and SMTP_SINK_PASSWORD are set, and then required. With SMTP_SINK_TLS set to
"starttls" (required before MAIL) or "implicit" (TLS from the first byte), SMTP_SINK_CERT and
SMTP_SINK_KEY name the PEM certificate and key it serves.
"""

import asyncio
import email
import email.policy
import json
import os
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        if local.startswith("busy"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        raw = envelope.original_content or envelope.content
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            parts.append({"content_type": part.get_content_type(), "content": part.get_content()})
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"]),
            "from": str(message["from"]),
            "to": str(message["to"]),
            "content_type": message.get_content_type(),
            "parts": parts,
            "authenticated": session.authenticated,
        }
        tmp = base + ".json.tmp"
        with open(tmp, "w") as f:
            json.dump(summary, f)
        os.rename(tmp, base + ".json")
        return "250 Message accepted for delivery"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok)
    return check


def main():
    directory = sys.argv[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    user, password = os.environ.get("SMTP_SINK_USER"), os.environ.get("SMTP_SINK_PASSWORD")
    kwargs = {}
    if user and password:
        kwargs = dict(authenticator=authenticator(user, password), auth_required=True, auth_require_tls=False)
    tls = os.environ.get("SMTP_SINK_TLS")
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(os.environ["SMTP_SINK_CERT"], os.environ["SMTP_SINK_KEY"])
        if tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif tls == "implicit":
            kwargs.update(ssl_context=context)
        else:
            raise SystemExit(f"SMTP_SINK_TLS must be starttls or implicit, not {tls!r}")
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print(f"PORT {port}", flush=True)
    try:
        sys.stdin.read()  # runs until the test closes our stdin (or dies)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
