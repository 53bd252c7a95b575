"""API keys and bearer tokens, with every token-response shape API-NOTES.md says to tolerate.

Lexful does not publish the token response's field names, so the sandbox can send any of
the variants a connector must accept: ``token``/``access_token``/``accessToken`` for the
token, and ``expires_in``/``expires_at``/``expiresAt`` or nothing for its lifetime.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any

from .timestamps import Clock, format_instant

TOKEN_FIELDS = ("token", "access_token", "accessToken")
EXPIRY_FIELDS = ("expires_in", "expires_at", "expiresAt", None)


@dataclass
class TokenGrant:
    account_id: str
    expires_ms: int


class Authenticator:
    def __init__(
        self,
        clock: Clock,
        *,
        account_id: str,
        key_id: str,
        key_secret: str,
        lifetime_s: int = 3600,
        token_field: str = "token",
        expiry_field: str | None = "expires_in",
    ) -> None:
        if token_field not in TOKEN_FIELDS or expiry_field not in EXPIRY_FIELDS:
            raise ValueError(f"unknown token shape {token_field!r}/{expiry_field!r}")
        self.clock = clock
        self.account_id = account_id
        self.key_id = key_id
        self.key_secret = key_secret
        self.lifetime_s = lifetime_s
        self.token_field = token_field
        self.expiry_field = expiry_field
        self._tokens: dict[str, TokenGrant] = {}
        self._lock = threading.Lock()

    def issue(self, account_id: str | None, body: Any) -> dict[str, Any] | None:
        """A token response for good credentials, None for anything else."""
        if not isinstance(body, dict) or account_id != self.account_id:
            return None
        good_id = secrets.compare_digest(str(body.get("id", "")), self.key_id)
        good_secret = secrets.compare_digest(str(body.get("secret", "")), self.key_secret)
        if not (good_id and good_secret):
            return None
        token = secrets.token_urlsafe(32)
        expires = self.clock.now_ms() + self.lifetime_s * 1000
        with self._lock:
            self._tokens[token] = TokenGrant(account_id, expires)
        response: dict[str, Any] = {self.token_field: token, "token_type": "Bearer"}
        if self.expiry_field == "expires_in":
            response["expires_in"] = self.lifetime_s
        elif self.expiry_field is not None:
            response[self.expiry_field] = format_instant(expires)
        return response

    def check(self, authorization: str | None) -> TokenGrant | None:
        """The grant behind a ``Bearer`` header, or None if missing, unknown or expired."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        with self._lock:
            grant = self._tokens.get(authorization[7:].strip())
        if grant is None or grant.expires_ms <= self.clock.now_ms():
            return None
        return grant

    def revoke_all(self) -> int:
        """Invalidate every token now, as an early revocation on the server side would."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
            return count

    def tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)
