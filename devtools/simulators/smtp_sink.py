"""The demo's local SMTP sink (default 127.0.0.1:5025): accepts every message the apps send through the real SMTP
client (shared/mail.py), keeps the last ones in memory and prints one line per message, so the demo's customer
mails go somewhere visible without a relay. The portal's "Customer mail" page shows each message's status.

Just enough SMTP for smtplib (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT); never for production. The tests use
the same server on a free port (tests/smtp_sink.py)."""
import logging
import socket
import threading
from collections import deque
from email import message_from_bytes, policy

log = logging.getLogger("orderloom.demo.smtp")


class SmtpSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 5025, keep: int = 200):
        self.messages: deque = deque(maxlen=keep)
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((host, port))
        self._server.listen(16)
        self.host, self.port = host, self._server.getsockname()[1]
        self._stopped = False
        self.quiet = False  # the demo prints one line per message; the tests' sink (tests/smtp_sink.py) does not
        self._thread = threading.Thread(target=self._serve, name="smtp-sink", daemon=True)

    def start(self) -> "SmtpSink":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()

    def _serve(self) -> None:
        while not self._stopped:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection) -> None:
        with connection:
            try:
                self._session(connection.makefile("rwb"))
            except (OSError, ValueError):
                pass

    def _session(self, stream) -> None:
        def say(line: str) -> None:
            stream.write(line.encode() + b"\r\n")
            stream.flush()

        say("220 orderloom-demo-sink ESMTP")
        sender, recipients = "", []
        while True:
            line = stream.readline()
            if not line:
                return
            command = line.decode("utf-8", "replace").strip()
            verb = command[:4].upper()
            if verb == "EHLO":
                say("250-orderloom-demo-sink")
                say("250 8BITMIME")
            elif verb == "HELO":
                say("250 orderloom-demo-sink")
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
                message = message_from_bytes(b"".join(data), policy=policy.default)
                self.messages.append((sender, recipients, message))
                if not self.quiet:
                    print(f"[smtp sink] to {', '.join(recipients)}: {message['Subject']}", flush=True)
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 OK")


def start_for_demo(host: str = "127.0.0.1", port: int = 5025) -> SmtpSink | None:
    """Start the sink and point the apps (created after this) at it through the environment; None when the port is
    taken (a relay already configured, or another demo)."""
    import os

    if os.environ.get("ORDERLOOM_SMTP_HOST"):
        return None
    try:
        sink = SmtpSink(host, port).start()
    except OSError as error:
        log.warning("smtp sink not started on %s:%s: %s", host, port, error)
        return None
    os.environ["ORDERLOOM_SMTP_HOST"], os.environ["ORDERLOOM_SMTP_PORT"] = host, str(sink.port)
    return sink
