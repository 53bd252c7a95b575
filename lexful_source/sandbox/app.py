"""The Lexful HTTP API over the store: routing, auth checks, validation and error bodies.

It knows nothing of sockets: a :class:`Request` comes in, a :class:`Response` goes out,
so the HTTP layer (``server.py``) can wrap it with faults and the tests can read it
route by route. Errors use Fastify's default body, as API-NOTES.md assumes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import orjson

from .auth import Authenticator
from .catalogue import ORGANIZATION_STATUSES, VISIBILITIES
from .files import PRESIGNED, FileStore
from .messages import (
    JSON,
    ApiError,
    Request,
    RequestInfo,
    Response,
    error_body,
    json_body,
    json_object,
    param,
)
from .query import BadRequest, parse_bool, parse_list_query, run_query
from .store import Collection, NotFound, Row, Store
from .timestamps import parse_instant


def route_of(method: str, path: str) -> str:
    """The route template a path matches, for counters and hooks."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["v1", "assets"]:
        last = "{property}" if parts[4:5] == ["secure"] else "{file_id}"
        slots = {2: "{type}", 3: "{id}", 5: last}
        parts = [slots.get(i, p) for i, p in enumerate(parts)]
    elif parts[0] == PRESIGNED and len(parts) == 3:
        parts[2] = "{file_id}"
    elif len(parts) == 3 and parts[1] in ("organizations", "asset_types"):
        parts[2] = "{id}"
    return f"{method} /{'/'.join(parts)}"


class LexfulApp:
    def __init__(
        self,
        store: Store,
        auth: Authenticator,
        *,
        list_shape: str = "full",
        forbidden_types: frozenset[str] = frozenset(),
        bad_credentials_status: int = 401,
    ) -> None:
        self.store = store
        self.auth = auth
        self.list_shape = list_shape
        self.forbidden_types = forbidden_types
        self.bad_credentials_status = bad_credentials_status
        self.files = FileStore(store)

    def handle(self, req: Request) -> Response:
        try:
            return self._dispatch(req)
        except ApiError as exc:
            return Response(exc.status, error_body(exc.status, str(exc)))
        except BadRequest as exc:
            return Response(400, error_body(400, str(exc)))
        except NotFound as exc:
            return Response(404, error_body(404, str(exc)))

    # -- routing ----------------------------------------------------------------
    def _dispatch(self, req: Request) -> Response:
        parts = req.path.strip("/").split("/")
        if parts[0] == PRESIGNED:
            with self.store.lock:
                return self.files.presigned(req, parts[1:])
        if parts[:1] != ["v1"] or len(parts) < 2:
            raise ApiError(404, f"Route {req.method}:{req.path} not found")
        if parts[1:] == ["auth", "token"] and req.method == "POST":
            return self._token(req)
        self._authorize(req)
        handler = self._route(req.method, parts[1:])
        if handler is None:
            raise ApiError(404, f"Route {req.method}:{req.path} not found")
        with self.store.lock:
            return handler(req)

    def _route(self, method: str, parts: list[str]) -> Callable[[Request], Response] | None:
        head, rest = parts[0], parts[1:]
        if head in ("organizations", "organization_types", "users", "asset_types") and not rest:
            if method == "GET":
                return lambda r: self._list(self.store.collection(head), r.params)
            if method == "POST" and head in ("organizations", "asset_types"):
                return self._create_organization if head == "organizations" else self._create_type
        if head == "organizations" and len(rest) == 1:
            return {
                "GET": lambda r: self._get(self.store.collection("organizations"), rest[0], r),
                "PATCH": lambda r: self._patch_organization(rest[0], r),
                "DELETE": lambda r: self._delete(self.store.collection("organizations"), rest[0]),
            }.get(method)
        if head == "asset_types" and len(rest) == 1 and method == "GET":
            return lambda r: self._get_type(rest[0])
        if head == "assets" and rest:
            return self._asset_route(method, rest)
        return None

    def _asset_route(self, method: str, rest: list[str]) -> Callable[[Request], Response] | None:
        type_name = rest[0]
        if type_name in self.forbidden_types:
            raise ApiError(403, f"Insufficient permissions to read assets of type '{type_name}'")
        coll = self.store.assets(type_name)
        if len(rest) == 1:
            return {
                "GET": lambda r: self._list(coll, r.params),
                "POST": lambda r: self._create_asset(coll, r),
            }.get(method)
        asset_id = rest[1]
        if len(rest) == 2:
            return {
                "GET": lambda r: self._get(coll, asset_id, r),
                "PATCH": lambda r: self._patch_asset(coll, asset_id, r),
                "DELETE": lambda r: self._delete(coll, asset_id),
            }.get(method)
        if rest[2] == "related" and len(rest) == 3:
            return {
                "GET": lambda r: self._related(coll, asset_id),
                "PUT": lambda r: self._put_related(coll, asset_id, r),
            }.get(method)
        if rest[2] == "files":
            self._live_row(coll, asset_id)
            return self.files.route(method, coll.name, asset_id, rest[3:])
        if rest[2] == "secure" and len(rest) == 4 and method == "GET":
            return lambda r: self._secure(coll, asset_id, rest[3])
        return None

    # -- auth -------------------------------------------------------------------
    def _token(self, req: Request) -> Response:
        try:
            body = orjson.loads(req.body or b"null")
        except orjson.JSONDecodeError:
            raise ApiError(400, "body must be JSON with 'id' and 'secret'") from None
        grant = self.auth.issue(req.headers.get("x-account-id"), body)
        if grant is None:
            status = self.bad_credentials_status
            raise ApiError(status, "Invalid API key or account")
        return Response(200, orjson.dumps(grant))

    def _authorize(self, req: Request) -> None:
        grant = self.auth.check(req.headers.get("authorization"))
        if grant is None:
            raise ApiError(401, "Invalid or expired token")
        account = req.headers.get("x-account-id")
        if account is None:
            raise ApiError(400, "headers must have required property 'x-account-id'")
        if account != grant.account_id:
            raise ApiError(403, "Token does not grant access to this account")

    # -- reads ------------------------------------------------------------------
    def _list(self, coll: Collection, params: list[tuple[str, str]]) -> Response:
        q = parse_list_query(params, coll)
        total, rows = run_query(coll, q)
        if q.fields is None and not q.expand:
            items = b",".join(self.store.body(coll, row) for row in rows)
        else:
            rendered = [self._view(coll, row, q.fields, q.expand) for row in rows]
            items = orjson.dumps(rendered)[1:-1]
        if self.list_shape == "items_only":
            return Response(200, b'{"items":[' + items + b"]}")
        tail = b'],"total":%d,"limit":%d,"offset":%d}' % (total, q.limit, q.offset)
        return Response(200, b'{"items":[' + items + tail)

    def _view(
        self, coll: Collection, row: Row, fields: list[str] | None, expand: set[str]
    ) -> dict[str, Any]:
        out = self.store.render(coll, row, with_labels="labels" in expand)
        refs = out.get("references")
        if isinstance(refs, dict) and any(e.split(".")[0] == "references" for e in expand):
            out["references"] = {
                name: self._expand_ref(value)
                if ("references" in expand or f"references.{name}" in expand)
                else value
                for name, value in refs.items()
            }
        if fields is not None:
            out = {k: out[k] for k in ("id", *fields) if k in out}
        return out

    def _expand_ref(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._expand_ref(v) for v in value]
        found = self.store.find_asset(value) if isinstance(value, str) else None
        if found is None:
            return value
        type_name, row = found
        return {"id": row.id, "name": row.doc.get("name"), "asset_type": type_name}

    def _get(self, coll: Collection, row_id: str, req: Request) -> Response:
        row = coll.rows.get(row_id)
        include_deleted = parse_bool(param(req, "include_deleted", "false"), "include_deleted")
        if row is None or (row.deleted_ms is not None and not include_deleted):
            raise NotFound(f"{_singular(coll)} '{row_id}' not found")
        expand = {e for e in param(req, "expand", "").split(",") if e}
        if not expand:
            return Response(200, self.store.body(coll, row))
        return Response(200, orjson.dumps(self._view(coll, row, None, expand)))

    def _get_type(self, id_or_name: str) -> Response:
        coll = self.store.collection("asset_types")
        for row in coll.rows.values():
            if id_or_name in (row.id, row.doc["name"]) and row.deleted_ms is None:
                return Response(200, self.store.body(coll, row))
        raise NotFound(f"Asset type '{id_or_name}' not found")

    def _related(self, coll: Collection, asset_id: str) -> Response:
        self._live_row(coll, asset_id)
        items = self.store.related.get(asset_id, [])
        return Response(200, orjson.dumps({"items": items, "total": len(items)}))

    def _secure(self, coll: Collection, asset_id: str, prop: str) -> Response:
        row = self._live_row(coll, asset_id)
        if prop not in coll.hidden:
            raise ApiError(400, f"'{prop}' is not a secure property of {coll.name}")
        return Response(200, orjson.dumps({"name": prop, "value": row.doc.get(prop)}))

    # -- writes -----------------------------------------------------------------
    def _create_organization(self, req: Request) -> Response:
        data = json_object(req)
        orgs = self.store.collection("organizations")
        if not isinstance(data.get("name"), str) or not data["name"].strip():
            raise ApiError(400, "body must have required property 'name'")
        slug = data.get("slug") or re.sub(r"[^a-z0-9]+", "-", data["name"].lower()).strip("-")
        if any(r.doc.get("slug") == slug for r in orgs.rows.values()):
            raise ApiError(409, f"An organization with slug '{slug}' already exists")
        doc = {
            "id": None,
            "is_primary": False,
            "name": data["name"],
            "slug": slug,
            "type": None,
            "status": "active",
            "description": None,
            "logo_url": None,
            "website_url": None,
            "notes": None,
            "alert": None,
            "parent_id": None,
            "asset_management": False,
            "labels": [],
            "created_at": None,
            "updated_at": None,
            "created_by": self.store.system_user_id,
            "updated_by": self.store.system_user_id,
            "deleted_at": None,
        }
        doc.pop("id")
        doc.update(self._organization_changes(data))
        row = self.store.insert(orgs, doc)
        return Response(201, self.store.body(orgs, row))

    def _patch_organization(self, row_id: str, req: Request) -> Response:
        orgs = self.store.collection("organizations")
        self._live_row(orgs, row_id)
        row = self.store.update(orgs, row_id, self._organization_changes(json_object(req)))
        return Response(200, self.store.body(orgs, row))

    def _organization_changes(self, data: dict[str, Any]) -> dict[str, Any]:
        allowed = set(self.store.collection("organizations").kinds) - {
            "id",
            "created_at",
            "updated_at",
            "deleted_at",
            "created_by",
            "updated_by",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ApiError(400, f"body has unknown properties: {', '.join(sorted(unknown))}")
        types = {r.doc["name"] for r in self.store.collection("organization_types").rows.values()}
        if "type" in data and data["type"] not in types:
            raise ApiError(400, f"body/type must be one of {sorted(types)}")
        if "status" in data and data["status"] not in ORGANIZATION_STATUSES:
            raise ApiError(400, f"body/status must be one of {ORGANIZATION_STATUSES}")
        parent = data.get("parent_id")
        if parent is not None and parent not in self.store.collection("organizations").rows:
            raise ApiError(400, f"body/parent_id: organization '{parent}' does not exist")
        return data

    def _create_type(self, req: Request) -> Response:
        data = json_object(req)
        name = data.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ApiError(400, "body/name must be lower-case letters, digits and underscores")
        if name in self.store.asset_types:
            raise ApiError(409, f"Asset type '{name}' already exists")
        definition = {
            "name": name,
            "display_name": data.get("display_name") or name,
            "description": data.get("description"),
            "is_system": False,
            "properties": list(data.get("properties") or []),
            "references": list(data.get("references") or []),
        }
        row = self.store.add_asset_type(definition)
        return Response(201, self.store.body(self.store.collection("asset_types"), row))

    def _create_asset(self, coll: Collection, req: Request) -> Response:
        row = self.create_asset(coll.name, json_object(req))
        return Response(201, self.store.body(coll, row))

    def _patch_asset(self, coll: Collection, asset_id: str, req: Request) -> Response:
        row = self.edit_asset(coll.name, asset_id, json_object(req))
        return Response(200, self.store.body(coll, row))

    def create_asset(self, type_name: str, data: dict[str, Any]) -> Row:
        """Create an asset as ``POST /v1/assets/{type}`` does, validation included."""
        coll = self.store.assets(type_name)
        assert coll.definition is not None
        changes = self._asset_changes(coll, data, partial=False)
        user = self.store.system_user_id
        doc: dict[str, Any] = {
            "organization_id": None,
            "organization_name": None,
            "visibility": "inherit",
            "owned_by": user,
            "name": None,
            **{p["name"]: None for p in coll.definition["properties"]},
            "references": {r["name"]: None for r in coll.definition["references"]},
            "labels": [],
            "created_at": None,
            "updated_at": None,
            "deleted_at": None,
            "created_by": user,
            "updated_by": user,
        }
        _merge_asset(doc, changes)
        with self.store.lock:
            return self.store.insert(coll, doc)

    def edit_asset(self, type_name: str, asset_id: str, data: dict[str, Any]) -> Row:
        """Update an asset as ``PATCH /v1/assets/{type}/{id}`` does, validation included."""
        coll = self.store.assets(type_name)
        with self.store.lock:
            row = self._live_row(coll, asset_id)
            changes = self._asset_changes(coll, data, partial=True)
            merged = dict(row.doc)
            merged["references"] = dict(row.doc.get("references") or {})
            _merge_asset(merged, changes)
            return self.store.update(coll, asset_id, merged)

    def _delete(self, coll: Collection, row_id: str) -> Response:
        self._live_row(coll, row_id)
        self.store.archive(coll, row_id)
        return Response(204)

    def _put_related(self, coll: Collection, asset_id: str, req: Request) -> Response:
        self._live_row(coll, asset_id)
        links = json_body(req, list, "a JSON array of {asset_id, description}")
        current = {item["asset_id"]: item for item in self.store.related.get(asset_id, [])}
        for i, link in enumerate(links):
            target = link.get("asset_id") if isinstance(link, dict) else None
            found = self.store.find_asset(target) if isinstance(target, str) else None
            if found is None:
                raise ApiError(400, f"body/{i}/asset_id: asset '{target}' does not exist")
            type_name, row = found
            current[row.id] = {
                "asset_type": type_name,
                "asset_id": row.id,
                "name": row.doc.get("name"),
                "description": link.get("description"),
            }
        self.store.related[asset_id] = list(current.values())
        items = self.store.related[asset_id]
        return Response(200, orjson.dumps({"items": items, "total": len(items)}))

    def _asset_changes(
        self, coll: Collection, data: dict[str, Any], *, partial: bool
    ) -> dict[str, Any]:
        """Validate a create or update body against the asset type's definition."""
        assert coll.definition is not None
        props = {p["name"]: p for p in coll.definition["properties"]}
        refs = {r["name"]: r for r in coll.definition["references"]}
        base = {"organization_id", "name", "visibility", "owned_by", "references"}
        unknown = set(data) - set(props) - base
        if unknown:
            raise ApiError(400, f"body has unknown properties: {', '.join(sorted(unknown))}")
        for name, prop in props.items():
            if name in data:
                _check_value(prop, data[name], f"body/{name}")
            elif prop.get("required") and not partial:
                raise ApiError(400, f"body must have required property '{name}'")
        if "visibility" in data and data["visibility"] not in VISIBILITIES:
            raise ApiError(400, f"body/visibility must be one of {VISIBILITIES}")
        changes = dict(data)
        if "organization_id" in data or not partial:
            org = self.store.collection("organizations").rows.get(data.get("organization_id"))
            if org is None:
                raise ApiError(
                    400,
                    f"body/organization_id: organization "
                    f"'{data.get('organization_id')}' does not exist",
                )
            changes["organization_name"] = org.doc["name"]
        references = data.get("references") or {}
        if not isinstance(references, dict):
            raise ApiError(400, "body/references must be an object")
        for name, value in references.items():
            self._check_reference(refs.get(name), name, value)
        return changes

    def _check_reference(self, ref: dict[str, Any] | None, name: str, value: Any) -> None:
        where = f"body/references/{name}"
        if ref is None:
            raise ApiError(400, f"{where}: no such reference")
        ids = value if isinstance(value, list) else [] if value is None else [value]
        if isinstance(value, list) and not ref["multiple"]:
            raise ApiError(400, f"{where} takes one id, not a list")
        targets = ref.get("target_asset_types") or ref.get("target_entity_types") or []
        for target_id in ids:
            found = self.store.find_asset(target_id) if isinstance(target_id, str) else None
            if found is None or found[0] not in targets:
                raise ApiError(400, f"{where}: no {'/'.join(targets)} asset '{target_id}'")

    def _live_row(self, coll: Collection, row_id: str) -> Row:
        row = coll.rows.get(row_id)
        if row is None or row.deleted_ms is not None:
            raise NotFound(f"{_singular(coll)} '{row_id}' not found")
        return row


def _merge_asset(doc: dict[str, Any], changes: dict[str, Any]) -> None:
    refs = changes.pop("references", None) or {}
    doc.update(changes)
    doc["references"].update(refs)
    if "name" not in changes and ("first_name" in changes or "last_name" in changes):
        doc["name"] = f"{doc.get('first_name') or ''} {doc.get('last_name') or ''}".strip()
    for key in ("hostname", "product"):
        if doc.get("name") is None and doc.get(key):
            doc["name"] = doc[key]


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "richtext": lambda v: isinstance(v, str),
    "richtext_large": lambda v: isinstance(v, str),
    "secret": lambda v: isinstance(v, str),
    "totp": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "file": lambda v: isinstance(v, dict),
    "date": lambda v: isinstance(v, str) and _valid(date.fromisoformat, v),
    "datetime": lambda v: isinstance(v, str) and _valid(parse_instant, v),
}


def _valid(parse: Callable[[str], Any], value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _check_value(prop: dict[str, Any], value: Any, where: str) -> None:
    if value is None:
        if prop.get("required"):
            raise ApiError(400, f"{where} is required and cannot be null")
        return
    check = _CHECKS.get(prop["type"], lambda v: True)
    if not check(value):
        raise ApiError(400, f"{where} must be of type {prop['type']}")
    if prop.get("enum") and value not in prop["enum"]:
        raise ApiError(400, f"{where} must be one of {prop['enum']}")
    array = prop.get("array")
    if prop["type"] == "array" and array and array.get("type") == "object":
        fields = {p["name"]: p for p in array.get("properties", [])}
        for i, item in enumerate(value):
            if not isinstance(item, dict) or set(item) - set(fields):
                raise ApiError(400, f"{where}/{i} must be an object with {sorted(fields)}")
            for key, sub in item.items():
                _check_value(fields[key], sub, f"{where}/{i}/{key}")


def _singular(coll: Collection) -> str:
    return {"organizations": "Organization"}.get(coll.name, f"Asset of type '{coll.name}'")


__all__ = ["JSON", "LexfulApp", "Request", "RequestInfo", "Response", "error_body", "route_of"]
