"""The admin API: virtual keys, teams and spend, guarded by the admin key.

===========  ==========================================  =====================================
method       path (under ``/v1/crossroads/admin``)       does
===========  ==========================================  =====================================
GET          ``/keys`` (``?include_revoked=true``)       list keys (never their values)
POST         ``/keys``                                   create: ``{name, team, policy,
                                                         expires_at | expires_in_days}``; 201
                                                         with the value in ``key``, once
GET          ``/keys/{id or name}``                      one key
POST         ``/keys/{id or name}/rotate``               a new value; the old one stops now
DELETE       ``/keys/{id or name}``                      revoke: it stops working now
GET, POST    ``/teams``                                  list; create or replace ``{name,
                                                         policy}``
GET, DELETE  ``/teams/{name}``                           one team; delete (when keyless)
GET          ``/spend?by=key,day&since=&until=``         spend from the trace store
POST         ``/reload``                                 read the config file and router
                                                         artifacts again and serve them
                                                         (:mod:`crossroads.gateway.reload`);
                                                         422 ``reload_refused``: old one stays;
                                                         several workers: all are replaced
===========  ==========================================  =====================================

Store calls run in worker threads: the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import orjson

from crossroads.exceptions import InvalidRequestError, MethodNotAllowedError, RequestError
from crossroads.gateway.errors import render
from crossroads.gateway.handlers import send_body

if TYPE_CHECKING:
    from crossroads.gateway.app import Gateway
    from crossroads.keys import KeyStore

log = logging.getLogger("crossroads.admin")

ADMIN_PREFIX = "/v1/crossroads/admin/"
# The admin routes served here; the rest of the prefix is the dashboard's (crossroads.dashboard).
ADMIN_PATHS = tuple(ADMIN_PREFIX + name for name in ("keys", "teams", "spend", "reload"))
JSON_HEADERS = [(b"content-type", b"application/json")]
CREATE_FIELDS = {"name", "team", "policy", "expires_at", "expires_in_days"}


class KeyStoreDisabled(RequestError):
    """400: the gateway has no key store (``store.keys`` is unset)."""

    code = "key_store_disabled"


class AdminAPI:
    """Routes ``/v1/crossroads/admin/...`` for ``gateway``."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            self.gateway._admin(scope)
            status, body = await self._route(scope, receive)
        except Exception as exc:
            status, payload, extra = render(exc)
            if status >= 500:
                log.error("admin call %s %s failed: %s", scope["method"], scope["path"], exc)
            headers = JSON_HEADERS + [(k.encode(), v.encode()) for k, v in extra.items()]
            return await send_body(send, status, payload, headers)
        await send_body(send, status, orjson.dumps(body), JSON_HEADERS)

    async def _route(self, scope: dict[str, Any], receive: Any) -> tuple[int, Any]:
        method: str = scope["method"]
        parts = [unquote(p) for p in scope["path"][len(ADMIN_PREFIX) :].split("/") if p]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if parts == ["spend"] and method == "GET":
            return 200, await self._spend(query)
        if parts == ["reload"]:
            if method != "POST":
                raise MethodNotAllowedError(f"Use POST for {scope['path']}.")
            done = await self.gateway.reloader.reload()
            log.warning("admin: reloaded %s (generation %d)", done["config"], done["generation"])
            if self.gateway.several_workers:
                # The file is valid: uvicorn's supervisor replaces every worker (this one
                # too) by one that reads it, each new one serving before the old one stops.
                os.kill(os.getppid(), signal.SIGHUP)
                done["workers"] = "replacing every worker"
            return 200, done
        if not parts or parts[0] not in ("keys", "teams") or len(parts) > 3:
            from crossroads.exceptions import UnsupportedRouteError

            raise UnsupportedRouteError(f"No admin route for {method} {scope['path']}.")
        store = self._store()
        allowed: dict[tuple[str, int], Callable[[], Any]]
        if parts[0] == "keys":
            ref = parts[1] if len(parts) > 1 else ""
            include = query.get("include_revoked", ["false"])[0].lower() in ("1", "true", "yes")
            allowed = {
                ("GET", 1): lambda: _page([k.public() for k in store.list_keys(include)]),
                ("GET", 2): lambda: store.get_key(ref).public(),
                ("DELETE", 2): lambda: self._logged("revoked", store.revoke_key(ref).public()),
            }
            if method == "POST" and len(parts) == 1:
                fields = _fields(await self.gateway._read_body(scope, receive), CREATE_FIELDS)
                return 201, await asyncio.to_thread(self._create, store, fields)
            if method == "POST" and len(parts) == 3 and parts[2] == "rotate":
                return 200, await asyncio.to_thread(
                    lambda: self._logged("rotated", store.rotate_key(ref).public())
                )
        else:
            name = parts[1] if len(parts) > 1 else ""
            allowed = {
                ("GET", 1): lambda: _page([t.public() for t in store.list_teams()]),
                ("GET", 2): lambda: store.get_team(name).public(),
                ("DELETE", 2): lambda: _deleted(store, name),
            }
            if method == "POST" and len(parts) == 1:
                fields = _fields(await self.gateway._read_body(scope, receive), {"name", "policy"})
                name, policy = _text(fields, "name", required=True), fields.get("policy")
                return 200, await asyncio.to_thread(lambda: store.put_team(name, policy).public())
        call = allowed.get((method, len(parts))) if len(parts) < 3 else None
        if call is None:
            raise MethodNotAllowedError(f"{method} is not allowed on {scope['path']}.")
        return 200, await asyncio.to_thread(call)

    def _store(self) -> KeyStore:
        ring = self.gateway.key_ring
        if ring is None:
            raise KeyStoreDisabled(
                "This gateway keeps no virtual keys: set store.keys (sqlite or a "
                "postgresql:// URL) in its config."
            )
        return ring.store

    def _create(self, store: KeyStore, fields: dict[str, Any]) -> dict[str, Any]:
        expires_at = fields.get("expires_at")
        days = fields.get("expires_in_days")
        for label, value in (("expires_at", expires_at), ("expires_in_days", days)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise InvalidRequestError(f"{label} must be a positive number", param=label)
        if days is not None:
            expires_at = time.time() + days * 86400
        policy = fields.get("policy")
        if policy is not None and not isinstance(policy, dict):
            raise InvalidRequestError("policy must be an object", param="policy")
        issued = store.create_key(
            _text(fields, "name", required=True),
            _text(fields, "team"),
            policy,
            expires_at,
            config_teams=self.gateway.teams.keys(),
        )
        return self._logged("created", issued.public())

    def _logged(self, action: str, key: dict[str, Any]) -> dict[str, Any]:
        log.info("admin: %s key %s (name %r, team %r)", action, key["id"], key["name"], key["team"])
        return key

    async def _spend(self, query: dict[str, list[str]]) -> dict[str, Any]:
        from crossroads.store.spend import parse_day

        by = [d for value in query.get("by", ["key,day"]) for d in value.split(",") if d]
        since, until = (
            parse_day(query[k][0], k) if k in query else None for k in ("since", "until")
        )
        store = self.gateway.store
        return _page(await asyncio.to_thread(store.spend, by, since, until))


def _page(rows: list[Any]) -> dict[str, Any]:
    return {"object": "list", "data": rows}


def _deleted(store: KeyStore, name: str) -> dict[str, Any]:
    store.delete_team(name)
    return {"object": "crossroads.team", "name": name, "deleted": True}


def _fields(body: bytes, allowed: set[str]) -> dict[str, Any]:
    try:
        fields = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(fields, dict):
        raise InvalidRequestError("The body must be a JSON object.")
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"Unknown field {unknown[0]!r}; known: {', '.join(sorted(allowed))}.", param=unknown[0]
        )
    return fields


def _text(fields: dict[str, Any], name: str, required: bool = False) -> Any:
    value = fields.get(name)
    if (value is None and required) or (value is not None and not isinstance(value, str)):
        raise InvalidRequestError(f"{name} must be a string", param=name)
    return value
