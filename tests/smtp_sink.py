"""The demo's SMTP sink (devtools/simulators/smtp_sink.py) on a free loopback port, as a context manager for tests:
a real SMTP server for Python's smtplib that keeps each message received as (mail from, recipients, parsed message),
all of them (a list), and prints nothing."""
from devtools.simulators import smtp_sink


class SmtpSink(smtp_sink.SmtpSink):
    def __init__(self):
        super().__init__("127.0.0.1", 0)
        self.messages: list[tuple[str, list[str], object]] = []
        self.quiet = True

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self._thread.join(timeout=5)
