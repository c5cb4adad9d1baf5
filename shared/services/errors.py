"""Errors a service raises; the edges turn them into form messages or JSON error bodies."""


class ServiceError(Exception):
    """A refused operation: nothing was changed."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def as_json(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return {"error": body}


class ValidationFailed(ServiceError):
    status = 422
    code = "invalid"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class Gone(ServiceError):
    """Something that existed and no longer may be had (an expired or used-up export link, a purged file)."""

    status = 410
    code = "gone"
