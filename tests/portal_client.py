"""Signing in to the portal through its real form, CSRF token included."""
import re

from tests.factories import PASSWORD

TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def english_client(app):
    """A test client whose browser asks for English (the default for anonymous visitors is Chinese)."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def csrf_token(client, path: str = "/sign-in") -> str:
    page = client.get(path)
    match = TOKEN.search(page.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def sign_in(client, username: str, password: str = PASSWORD):
    return client.post("/sign-in", data={"username": username, "password": password,
                                         "csrf_token": csrf_token(client)})
