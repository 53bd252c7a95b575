"""One exception hierarchy, so a caller can catch at the level it cares about.

Every message names what was wrong and where (endpoint, offset, setting), and never
contains the API secret or a bearer token.
"""

from __future__ import annotations


class LexfulError(Exception):
    """Anything this source raises on purpose."""


class ConfigurationError(LexfulError):
    """A setting is missing or invalid; the message names the key and where to set it."""


class AuthenticationError(LexfulError):
    """Lexful refused the API key or account: retrying cannot help."""


class ApiError(LexfulError):
    """Lexful answered a request with an error status."""

    def __init__(self, message: str, *, status: int | None, endpoint: str) -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint


class MalformedResponseError(LexfulError):
    """A response that does not have the documented shape."""


class PaginationError(LexfulError):
    """The server kept paging without end (repeated or endless pages)."""


class LoaderFileError(LexfulError):
    """A loader file the source writes for dlt could not be written (a full disk, a
    directory removed under the run); the message names the table and the file."""


class UnknownAssetTypeError(ConfigurationError):
    """An asset type named in the configuration does not exist in the account."""
