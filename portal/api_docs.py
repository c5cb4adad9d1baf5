"""The OpenAPI file served by the portal. Being filled in."""
from flask import Blueprint

bp = Blueprint("api_docs", __name__)
