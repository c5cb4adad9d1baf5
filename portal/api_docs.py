"""The OpenAPI description of /api/v1 (docs/openapi.json), served as-is, and a plain page listing its operations."""
import functools
import json

from flask import Blueprint, current_app, render_template_string

from shared.config import PROJECT_ROOT

bp = Blueprint("api_docs", __name__, url_prefix="/api/v1")
SPEC_PATH = PROJECT_ROOT / "docs" / "openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")

PAGE = """{% extends "base.html" %}
{% block title %}API{% endblock %}
{% block content %}
<h1>{{ spec.info.title }} <small>{{ spec.info.version }}</small></h1>
<p>{{ spec.info.description }}</p>
<p>Machine-readable description: <a href="{{ url_for('api_docs.openapi') }}">openapi.json</a>
(OpenAPI {{ spec.openapi }}).
Base path <code>{{ spec.servers[0].url }}</code>; send <code>Authorization: Bearer &lt;token&gt;</code>
(<code>orderloom users token USERNAME</code> prints one).</p>
<table class="data">
  <thead><tr><th>Method</th><th>Path</th><th>What it does</th><th>Permission</th><th>Answers</th></tr></thead>
  <tbody>
  {% for method, path, operation in operations %}
    <tr>
      <td><code>{{ method|upper }}</code></td>
      <td><code>{{ spec.servers[0].url }}{{ path }}</code></td>
      <td>{{ operation.summary }}</td>
      <td>{{ operation.get('x-permission', 'public') }}</td>
      <td>{{ operation.responses|join(', ') }}</td>
    </tr>
  {% endfor %}
  </tbody>
</table>
{% endblock %}
"""


@functools.cache
def _document() -> tuple[bytes, dict]:
    raw = SPEC_PATH.read_bytes()
    return raw, json.loads(raw)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document, byte for byte as kept in docs/openapi.json."""
    raw, _ = _document()
    response = current_app.response_class(raw, mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/docs")
def docs():
    """Every operation of the API on one page: method, path, summary, permission and answers."""
    _, spec = _document()
    operations = [(method, path, item[method]) for path, item in spec["paths"].items()
                  for method in METHODS if method in item]
    return render_template_string(PAGE, spec=spec, operations=operations)
