"""JSON API /api/v1 (bearer tokens). Being filled in."""
from flask import Blueprint

bp = Blueprint("api", __name__)
