"""A tiny SMTP server on loopback for tests (aiosmtpd is not installed): a thread accepts connections, speaks just
enough SMTP (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) for Python's smtplib, and keeps each message received
as (mail from, recipients, parsed message)."""
import socket
import threading
from email import message_from_bytes
from email import policy


class SmtpSink:
    def __init__(self):
        self.messages: list[tuple[str, list[str], object]] = []
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(8)
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stopped = False

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stopped = True
        self._server.close()
        self._thread.join(timeout=5)

    def _serve(self):
        while not self._stopped:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            with connection:
                try:
                    self._session(connection.makefile("rwb"))
                except (OSError, ValueError):
                    continue

    def _session(self, stream):
        def say(line: str):
            stream.write(line.encode() + b"\r\n")
            stream.flush()

        say("220 sink ESMTP")
        sender, recipients = "", []
        while True:
            line = stream.readline()
            if not line:
                return
            command = line.decode("utf-8", "replace").strip()
            verb = command[:4].upper()
            if verb == "EHLO":
                say("250-sink")
                say("250 8BITMIME")
            elif verb == "HELO":
                say("250 sink")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].strip().split()[0].strip("<>"), []
                say("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                say("250 OK")
            elif verb == "DATA":
                say("354 end with .")
                data = []
                while True:
                    chunk = stream.readline()
                    if chunk in (b".\r\n", b".\n", b""):
                        break
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.messages.append((sender, recipients, message_from_bytes(b"".join(data), policy=policy.default)))
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:  # RSET, NOOP and anything else
                say("250 OK")
