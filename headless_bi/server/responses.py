"""One JSON shape for errors the server answers itself, so clients never have to parse text or HTML.

The body follows GraphQL's error format (`errors[].message`, `extensions.code`), which GraphQL
clients already know how to show.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL",
}


def error_response(status: int, message: str, code: str | None = None) -> JSONResponse:
    code = code or _CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL")
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status)
