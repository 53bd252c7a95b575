"""Requests, responses and API errors, shared by the routes and the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

JSON = "application/json; charset=utf-8"


@dataclass
class Request:
    method: str
    path: str
    params: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""


@dataclass
class RequestInfo:
    """What an ``on_request`` hook sees: enough to pick the request it wants to disturb."""

    index: int
    method: str
    path: str
    params: list[tuple[str, str]]
    route: str

    def param(self, name: str, default: str | None = None) -> str | None:
        return next((v for k, v in self.params if k == name), default)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_body(status: int, message: str) -> bytes:
    phrase = HTTPStatus(status).phrase
    return orjson.dumps({"statusCode": status, "error": phrase, "message": message})


def json_body(req: Request, expected: type, shape: str = "a JSON object") -> Any:
    """The request's JSON body, or a 400 saying what shape was expected."""
    try:
        data = orjson.loads(req.body or b"null")
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, expected):
        raise ApiError(400, f"body must be {shape}")
    return data


def json_object(req: Request) -> dict[str, Any]:
    return json_body(req, dict)


def param(req: Request, name: str, default: str) -> str:
    return next((v for k, v in req.params if k == name), default)
