"""The API description: docs/openapi.json served as-is, and the portal's API page made from it (in the portal's
frame, in the viewer's language, with a try-it form that calls the API with a short-lived token of the viewer's own).

The description's texts are English. What the page shows as headings (operation summaries, tag titles, the shared
answers) is translated through the catalog: `catalog_texts` names them, scripts/api_texts.py writes them into
portal/api_texts.py for pybabel to extract, and tests/test_translations.py checks that module against the file.
Longer descriptions stay English and are marked so (lang="en").
"""
import functools
import json
import re
from dataclasses import dataclass, field

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, session, url_for
from flask_babel import gettext
from markupsafe import Markup, escape

from portal.access import register_public, requires
from shared.config import PROJECT_ROOT
from shared.extensions import db
from shared.timekeeping import to_zone
from shared.web import staff_actor

bp = Blueprint("api_docs", __name__)
SPEC_PATH = PROJECT_ROOT / "docs" / "openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")
# How long the try-it token lives: long enough to try a few calls, short enough that a forgotten tab holds nothing.
TRY_IT_MINUTES = 10
TRY_IT_SESSION_KEY = "api_try_token"
SCHEMA_DEPTH = 4  # nested schemas shown this deep; deeper ones by name only


@functools.cache
def _document() -> tuple[bytes, dict]:
    raw = SPEC_PATH.read_bytes()
    return raw, json.loads(raw)


def specification() -> dict:
    """docs/openapi.json, read once per process."""
    return _document()[1]


def tag_title(tag: dict) -> str:
    """The heading of a tag group: its `x-title`, else its name with a capital (an English msgid)."""
    return tag.get("x-title") or tag["name"].capitalize()


def catalog_texts(spec: dict) -> list[str]:
    """The English texts of the description that the API page shows translated, each once, in document order."""
    texts: list[str] = []
    for tag in spec.get("tags", []):
        texts.append(tag_title(tag))
        if tag.get("description"):
            texts.append(tag["description"])
    for item in spec["paths"].values():
        texts += [item[method]["summary"] for method in METHODS if method in item and item[method].get("summary")]
    texts += [answer["description"] for answer in spec.get("components", {}).get("responses", {}).values()
              if answer.get("description")]
    return list(dict.fromkeys(texts))


_CODE_SPAN = re.compile(r"`([^`]+)`")


def code_spans(text: str | None) -> Markup:
    """Text whose `backticked` parts are shown as code; everything escaped, an unpaired backtick kept as typed."""
    if not text:
        return Markup("")
    out, last = [], 0
    for match in _CODE_SPAN.finditer(text):
        out.append(escape(text[last:match.start()]))
        out.append(Markup("<code>%s</code>") % match.group(1))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


# ---------------------------------------------------------------- the page's model of the description

@dataclass
class SchemaView:
    """A schema as the page shows it: a name (for a $ref), a type in words, fields of an object, items of an array."""

    name: str | None
    kind: str
    description: str | None = None
    fields: list[tuple[str, bool, "SchemaView"]] = field(default_factory=list)
    items: "SchemaView | None" = None
    variants: list["SchemaView"] = field(default_factory=list)
    enum: list = field(default_factory=list)
    example: object = None
    expanded: bool = True


def _resolve(spec: dict, schema: dict) -> tuple[str | None, dict]:
    ref = schema.get("$ref")
    if not ref:
        return None, schema
    target = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return ref.rsplit("/", 1)[-1], target


def schema_view(spec: dict, schema: dict | None, depth: int = 0, seen: tuple = ()) -> SchemaView | None:
    if not schema:
        return None
    name, body = _resolve(spec, schema)
    if name and (name in seen or depth >= SCHEMA_DEPTH):
        return SchemaView(name, "object", body.get("description"), expanded=False)
    seen = seen + ((name,) if name else ())
    kind = body.get("type", "")
    if isinstance(kind, list):
        kind = " | ".join(kind)
    view = SchemaView(name, kind or ("object" if "properties" in body else ""), body.get("description"),
                      enum=list(body.get("enum", [])), example=(body.get("examples") or [None])[0])
    required = set(body.get("required", []))
    for prop, sub in body.get("properties", {}).items():
        child = schema_view(spec, sub, depth + 1, seen)
        if child is not None:
            view.fields.append((prop, prop in required, child))
    if "items" in body:
        view.items = schema_view(spec, body["items"], depth + 1, seen)
        view.kind = "array"
    for key in ("oneOf", "anyOf", "allOf"):
        view.variants += [v for v in (schema_view(spec, s, depth + 1, seen) for s in body.get(key, [])) if v]
    return view


def example_value(spec: dict, schema: dict | None, depth: int = 0):
    """A value to start the try-it body from: each schema's first example, else a blank of its type
    (objects with their required fields, or all of them when none is required)."""
    if not schema or depth > SCHEMA_DEPTH:
        return None
    _name, body = _resolve(spec, schema)
    if body.get("examples"):
        return body["examples"][0]
    for key in ("oneOf", "anyOf"):
        if body.get(key):
            return example_value(spec, body[key][0], depth + 1)
    kind = body.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if kind == "object" or "properties" in body:
        properties = body.get("properties", {})
        wanted = [p for p in properties if p in set(body.get("required", []))] or list(properties)
        return {p: example_value(spec, properties[p], depth + 1) for p in wanted}
    if kind == "array":
        return [example_value(spec, body.get("items"), depth + 1)]
    if body.get("enum"):
        return body["enum"][0]
    return {"integer": 0, "number": 0, "boolean": False, "string": ""}.get(kind)


@dataclass
class Parameter:
    name: str
    where: str  # path, query, header
    required: bool
    kind: str
    description: str | None
    example: object


@dataclass
class Answer:
    status: str
    description: str | None
    shared: str | None  # the name of a shared answer (components/responses: described once, in the catalog)
    schema: str | None


@dataclass
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    description: str | None
    permission: tuple[str, str] | None
    public: bool
    parameters: list[Parameter]
    body: SchemaView | None
    body_example: str | None
    body_type: str | None
    answers: list[Answer]

    @property
    def anchor(self) -> str:
        return f"op-{self.operation_id}"


@dataclass
class TagGroup:
    name: str
    title: str
    description: str | None
    operations: list[Operation] = field(default_factory=list)


def _parameter(spec: dict, raw: dict) -> Parameter:
    _name, raw = _resolve(spec, raw)
    schema = _resolve(spec, raw.get("schema", {}))[1]
    example = (raw.get("examples") or schema.get("examples") or [None])
    example = example[0] if isinstance(example, list) else example
    return Parameter(raw["name"], raw.get("in", "query"), bool(raw.get("required")), str(schema.get("type", "")),
                     raw.get("description") or schema.get("description"), example)


def _answers(spec: dict, responses: dict) -> list[Answer]:
    answers = []
    for status, raw in responses.items():
        name, body = _resolve(spec, raw)
        schema = None
        for content in body.get("content", {}).values():
            schema = _resolve(spec, content.get("schema", {}))[0] or schema
        answers.append(Answer(status, body.get("description"), name, schema))
    return answers


def _operation(spec: dict, method: str, path: str, raw: dict) -> Operation:
    permission = tuple(raw["x-permission"].split(":", 1)) if raw.get("x-permission") else None
    body = body_example = body_type = None
    if raw.get("requestBody"):
        _name, request_body = _resolve(spec, raw["requestBody"])
        body_type, media = next(iter(request_body.get("content", {}).items()), (None, {}))
        body = schema_view(spec, media.get("schema"))
        example = example_value(spec, media.get("schema"))
        body_example = json.dumps(example, ensure_ascii=False, indent=2) if example is not None else "{}"
    parameters = [_parameter(spec, p) for p in raw.get("parameters", [])]
    return Operation(method, path, raw.get("operationId", f"{method}{path}"), raw.get("summary", ""),
                     raw.get("description"), permission, raw.get("security") == [], parameters, body, body_example,
                     body_type, _answers(spec, raw.get("responses", {})))


@functools.cache
def tag_groups() -> list[TagGroup]:
    """The operations of the description by tag, in the order the tags are declared (untagged last)."""
    spec = specification()
    groups = {tag["name"]: TagGroup(tag["name"], tag_title(tag), tag.get("description")) for tag in spec["tags"]}
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                operation = _operation(spec, method, path, item[method])
                tag = (item[method].get("tags") or ["other"])[0]
                groups.setdefault(tag, TagGroup(tag, tag.capitalize(), None)).operations.append(operation)
    return [group for group in groups.values() if group.operations]


def roles_allowed(permission: tuple[str, str] | None) -> list[str]:
    """The role codes whose grants include `permission`, as the permission table says now."""
    if permission is None:
        return []
    from shared.security import role_table

    resource, action = permission
    return sorted(code for code, grants in role_table.current().grants.items() if action in grants.get(resource, ()))


# ---------------------------------------------------------------- routes

@bp.get("/api/v1/openapi.json")
def openapi():
    """The OpenAPI 3.1 document, byte for byte as kept in docs/openapi.json."""
    raw, _ = _document()
    response = current_app.response_class(raw, mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/api/v1/docs")
def docs():
    """The API's page lives in the portal (its frame, its language): this old address leads there."""
    return redirect(url_for("api_docs.guide"))


@bp.get("/api-docs")
def guide():
    """Every operation of the API, by tag, in the portal's frame and the viewer's language; signed-in staff get a
    try-it form per operation."""
    from flask_login import current_user

    spec = specification()
    signed_in = current_user.is_authenticated and hasattr(current_user, "role")
    return render_template("portal/api_docs.html", spec=spec, groups=tag_groups(), signed_in=signed_in,
                           try_minutes=TRY_IT_MINUTES, roles_allowed=roles_allowed, code_spans=code_spans,
                           translate=gettext)


register_public("api_docs.guide")


def _end_try_token(user) -> None:
    from shared.services import staff

    token_id = session.pop(TRY_IT_SESSION_KEY, None)
    if isinstance(token_id, int):
        staff.revoke_token(user, staff_actor(user), token_id)


@bp.post("/api-docs/try-token")
@requires("dashboard", "view")
def try_token():
    """A fresh API token of the signed-in user for the try-it forms, valid TRY_IT_MINUTES; the one this session
    held before is revoked first, so a session holds at most one."""
    from flask_login import current_user

    from shared.services import staff

    _end_try_token(current_user)
    token, record = staff.issue_try_it_token(current_user, staff_actor(current_user), TRY_IT_MINUTES)
    db.session.commit()
    session[TRY_IT_SESSION_KEY] = record.id
    zone = g.get("timezone") or current_app.config["MERCHANT_TIMEZONE"]
    local = to_zone(record.expires_at, zone)
    return jsonify({"token": token, "expires_at": record.expires_at.isoformat(), "minutes": TRY_IT_MINUTES,
                    "expires_local": f"{local:%H:%M} ({zone})"})


@bp.post("/api-docs/try-token/end")
@requires("dashboard", "view")
def end_try_token():
    """Revoke this session's try-it token now (the page does so when it is left)."""
    from flask_login import current_user

    _end_try_token(current_user)
    db.session.commit()
    return "", 204
