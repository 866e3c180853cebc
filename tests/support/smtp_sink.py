"""A real SMTP server for the notification tests (aiosmtpd).

Every message it accepts is written to DIR as <n>.json with the envelope,
the authenticated user, whether the session was TLS, the raw message and
its decoded subject, Message-ID, plain-text and HTML parts.
Options: --cert/--key require STARTTLS; --auth USER:PASS requires AUTH.
It prints "ready" once listening and runs until killed.
"""

import argparse
import email
import email.policy
import json
import os
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.Lock()
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            number = self.count
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        record = {
            "subject": str(message["subject"]),
            "message_id": str(message["message-id"]),
            "to": str(message["to"]),
            "from": str(message["from"]),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": session.auth_data if isinstance(session.auth_data, str) else None,
            "tls": session.ssl is not None,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        path = os.path.join(self.directory, "%06d.json" % number)
        with open(path + ".tmp", "w") as out:
            json.dump(record, out)
        os.rename(path + ".tmp", path)
        return "250 OK"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth")
    args = parser.parse_args()
    kwargs = {}
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        kwargs["tls_context"] = context
        kwargs["require_starttls"] = True
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, auth_data=user if ok else None)

        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
        kwargs["auth_require_tls"] = bool(args.cert)
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
