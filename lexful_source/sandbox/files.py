"""Asset files: the three-step upload of common-flows.md, with presigned URLs on the sandbox.

A real presigned URL points at S3; here it points back at the sandbox under
``/_presigned/``, signed with a random token and needing no bearer token, so the flow
runs exactly as the docs write it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from .messages import ApiError, Request, Response, json_object
from .store import NotFound
from .timestamps import format_instant

if TYPE_CHECKING:
    from .store import Store

PRESIGNED = "_presigned"
FIELDS = ("name", "original_name", "file_extension", "mime_type", "size")


class FileStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.records: dict[str, dict[str, Any]] = {}
        self.content: dict[str, bytes] = {}
        self._signatures: dict[str, str] = {}

    def route(
        self, method: str, type_name: str, asset_id: str, rest: list[str]
    ) -> Callable[[Request], Response] | None:
        if not rest:
            return {
                "GET": lambda r: self._list(asset_id),
                "POST": lambda r: self._create(type_name, asset_id, r),
            }.get(method)
        file_id, action = rest[0], rest[1:]
        if action == ["complete"] and method == "POST":
            return lambda r: self._complete(asset_id, file_id)
        if action == ["download"] and method == "GET":
            return lambda r: self._download(asset_id, file_id, r)
        return None

    def _url(self, req: Request, verb: str, file_id: str) -> str:
        signature = secrets.token_urlsafe(16)
        self._signatures[f"{verb}/{file_id}"] = signature
        host = req.headers.get("host", "127.0.0.1")
        return f"http://{host}/{PRESIGNED}/{verb}/{file_id}?signature={signature}"

    def _create(self, type_name: str, asset_id: str, req: Request) -> Response:
        data = json_object(req)
        missing = [f for f in FIELDS if f not in data]
        if missing:
            raise ApiError(400, f"body must have required property '{missing[0]}'")
        if not isinstance(data["size"], int) or data["size"] < 0:
            raise ApiError(400, "body/size must be a non-negative integer")
        file_id = self.store.new_id()
        record = {
            "id": file_id,
            "asset_id": asset_id,
            "asset_type": type_name,
            **{f: data[f] for f in FIELDS},
            "status": "pending",
            "created_at": format_instant(self.store.clock.now_ms()),
        }
        self.records[file_id] = record
        body = {"file": record, "presignedUploadUrl": self._url(req, "upload", file_id)}
        return Response(201, orjson.dumps(body))

    def _record(self, asset_id: str, file_id: str) -> dict[str, Any]:

        record = self.records.get(file_id)
        if record is None or record["asset_id"] != asset_id:
            raise NotFound(f"File '{file_id}' not found")
        return record

    def _list(self, asset_id: str) -> Response:

        items = [r for r in self.records.values() if r["asset_id"] == asset_id]
        return Response(200, orjson.dumps({"items": items, "total": len(items)}))

    def _complete(self, asset_id: str, file_id: str) -> Response:

        record = self._record(asset_id, file_id)
        if file_id not in self.content:
            raise ApiError(400, f"File '{file_id}' has not been uploaded yet")
        record["status"] = "uploaded"
        return Response(200, orjson.dumps(record))

    def _download(self, asset_id: str, file_id: str, req: Request) -> Response:

        record = self._record(asset_id, file_id)
        if record["status"] != "uploaded":
            raise ApiError(400, f"File '{file_id}' upload is not complete")
        body = {"url": self._url(req, "download", file_id), "file": record}
        return Response(200, orjson.dumps(body))

    def presigned(self, req: Request, parts: list[str]) -> Response:
        """The storage side of a presigned URL: PUT uploads, GET downloads."""

        if len(parts) != 2:
            raise ApiError(404, "No such presigned object")
        verb, file_id = parts
        signature = next((v for k, v in req.params if k == "signature"), None)
        expected = self._signatures.get(f"{verb}/{file_id}")
        if expected is None or signature is None or not secrets.compare_digest(signature, expected):
            raise ApiError(403, "Signature does not match")
        if verb == "upload" and req.method == "PUT":
            self.content[file_id] = req.body
            return Response(200)
        if verb == "download" and req.method == "GET":
            mime = self.records[file_id]["mime_type"]
            return Response(200, self.content[file_id], content_type=mime)
        raise ApiError(405, f"{req.method} is not allowed on a presigned {verb} URL")
