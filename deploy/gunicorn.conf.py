"""gunicorn settings for both apps: `gunicorn -c deploy/gunicorn.conf.py wsgi:portal` (and `wsgi:customer` with
ORDERLOOM_BIND set to the customer site's address). Everything can be overridden from the environment."""
import multiprocessing
import os

bind = os.environ.get("ORDERLOOM_BIND", "127.0.0.1:8000")
# Threads, not more processes: a request mostly waits on PostgreSQL or Redis, and each process holds its own pool.
workers = int(os.environ.get("ORDERLOOM_WEB_WORKERS", min(multiprocessing.cpu_count() * 2 + 1, 8)))
worker_class = "gthread"
threads = int(os.environ.get("ORDERLOOM_WEB_THREADS", "4"))
timeout = int(os.environ.get("ORDERLOOM_WEB_TIMEOUT", "60"))  # spreadsheet imports and PDF pages may take a while
graceful_timeout = 30
keepalive = 5
max_requests = 2000  # a worker is replaced now and then, so nothing grows without bound
max_requests_jitter = 200
preload_app = False  # each worker opens its own database pool after the fork
forwarded_allow_ips = os.environ.get("ORDERLOOM_FORWARDED_ALLOW_IPS", "127.0.0.1")  # the reverse proxy in front
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("ORDERLOOM_LOG_LEVEL", "info")
access_log_format = 'remote=%(h)s method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s ms=%(M)s agent="%(a)s"'
