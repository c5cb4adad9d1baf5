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


EXPORT_LINK = re.compile(r'/exports/(EX[0-9A-F]{16})/download')


def start_export(client, kind: str, format: str = "csv", personal: bool = False, **filters):
    """Post the My exports form (or the personal one) as the page's button would."""
    return client.post("/exports/personal" if personal else "/exports/",
                       data={"csrf_token": csrf_token(client, "/exports/"), "kind": kind, "format": format, **filters})


def exported_file(client, kind: str, format: str = "csv", personal: bool = False, **filters):
    """Start an export (jobs run inline in tests, so it is made within the request), then download it from the
    My exports page: (export id, download response)."""
    started = start_export(client, kind, format, personal, **filters)
    assert started.status_code == 303, started.text[:800]
    match = EXPORT_LINK.search(client.get("/exports/").text)
    assert match, "no download link on My exports"
    return match.group(1), client.get(f"/exports/{match.group(1)}/download")
