"""Constants of the Lexful API and of this source, in one place."""

from __future__ import annotations

DEFAULT_API_BASE_URL = "https://api.us.lexful.app"

MAX_PAGE_SIZE = 1000  # the API's limit maximum
DEFAULT_TOKEN_LIFETIME_S = 3600  # "valid for 60 minutes" when the response does not say
TOKEN_REFRESH_MARGIN_S = 300  # refresh this long before expiry (capped at a tenth of the lifetime)
DEFAULT_START_DATE = "1970-01-01T00:00:00Z"
REQUEST_TIMEOUT_S = 60.0
CONCURRENT_REQUESTS = 4  # requests in flight across resources, and for one list's next pages
# A list's bodies are decoded by Arrow once they add up to this; before, they go the dict
# path (a few dozen records: what a run with nothing new reads; records.py).
ARROW_MIN_BODY = 32 * 1024
ON_FORBIDDEN = ("fail", "skip")  # what a 403 on one resource does to the run

TOKEN_PATH = "/v1/auth/token"
ASSET_TYPES_PATH = "/v1/asset_types"
ASSETS_PATH = "/v1/assets/{type}"

# Reference data: small, read whole on every run and replaced.
CATALOGUE_RESOURCES = {
    "organization_types": "/v1/organization_types",
    "users": "/v1/users",
}
# Incremental on updated_at, merged on id.
ORGANIZATIONS_PATH = "/v1/organizations"

# A read connector never loads these values (API-NOTES.md: secret and totp properties).
HIDDEN_PROPERTY_TYPES = frozenset({"secret", "totp"})

# Columns every asset has, besides its type's properties.
ASSET_BASE_COLUMNS: dict[str, str] = {
    "id": "text",
    "organization_id": "text",
    "organization_name": "text",
    "visibility": "text",
    "owned_by": "text",
    "name": "text",
    "created_at": "timestamp",
    "updated_at": "timestamp",
    "deleted_at": "timestamp",
    "created_by": "text",
    "updated_by": "text",
}
ORGANIZATION_COLUMNS: dict[str, str] = {
    "id": "text",
    "is_primary": "bool",
    "name": "text",
    "slug": "text",
    "type": "text",
    "status": "text",
    "description": "text",
    "logo_url": "text",
    "website_url": "text",
    "notes": "text",
    "alert": "text",
    "parent_id": "text",
    "asset_management": "bool",
    "labels": "json",
    "created_at": "timestamp",
    "updated_at": "timestamp",
    "created_by": "text",
    "updated_by": "text",
    "deleted_at": "timestamp",
}
# dlt data types for Lexful property types; array properties become child tables.
PROPERTY_DATA_TYPES: dict[str, str] = {
    "string": "text",
    "richtext": "text",
    "richtext_large": "text",
    "number": "double",
    "integer": "bigint",
    "boolean": "bool",
    "date": "date",
    "datetime": "timestamp",
    "file": "json",
}

# Child-table columns owned by this source.
PARENT_KEY = "asset_id"
POSITION = "position"
MARKER = "_lexful_replaces_children"  # hard-delete marker: never stored, clears a parent's children
MARKER_POSITION = -1  # markers need a position too: (asset_id, position) is the child key
PURGED = "_lexful_purged"  # hard-delete tombstone: a record Lexful no longer has (reconcile)
REFERENCES_TABLE_SUFFIX = "references"
