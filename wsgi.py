"""WSGI entry points for gunicorn: `gunicorn wsgi:portal` and `gunicorn wsgi:customer`."""
from customer_site import create_app as create_customer_app
from portal import create_app as create_portal_app

portal = create_portal_app()
customer = create_customer_app()
