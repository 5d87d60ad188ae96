"""The gateway's own API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Request bodies are the JSON schemas of the validation models in :mod:`crossroads.formats`
(what the gateway checks before routing); answers are described by the fields the gateway
always renders, and errors in each API's shape: OpenAI's ``{"error": {...}}``, Anthropic's
``{"type": "error", "error": {...}}`` on ``/v1/messages``. The document depends on no config
(no model names, no keys), so it is built once, on first use, and kept.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter

from crossroads import __version__

_REF = "#/components/schemas/"

# path -> (format module, prefix of its schema names, success schema, summary)
_MODEL_CALLS: dict[str, tuple[str, str, str, str]] = {
    "/v1/chat/completions": ("openai_chat", "Chat", "ChatCompletion", "OpenAI Chat Completions"),
    "/v1/completions": (
        "openai_completions",
        "Completions",
        "TextCompletion",
        "OpenAI Completions",
    ),
    "/v1/messages": ("anthropic_messages", "Messages", "Message", "Anthropic Messages"),
    "/v1/responses": ("openai_responses", "Responses", "Response", "OpenAI Responses (stateless)"),
    "/v1/embeddings": ("openai_embeddings", "Embeddings", "EmbeddingList", "OpenAI Embeddings"),
}
_BODY_MODELS = {
    "openai_chat": "ChatBody",
    "openai_completions": "CompletionBody",
    "anthropic_messages": "MessagesBody",
    "openai_responses": "ResponsesBody",
    "openai_embeddings": "EmbeddingsBody",
}
_STREAMS = {"openai_chat", "openai_completions", "anthropic_messages", "openai_responses"}
# What a model call can answer besides 200, and why.
_CALL_ERRORS = {
    "400": "The body is not valid JSON, a field is wrong (the error names it), or no model "
    "of the decision can serve the request.",
    "401": "Missing or unknown API key (only when server.api_keys is set).",
    "404": "The model is neither a configured model nor an entrypoint.",
    "413": "The body is over server.max_body_bytes.",
    "429": "The upstream is rate-limiting (Retry-After tells when to come back).",
    "502": "The upstream failed or answered something that cannot be parsed.",
    "503": "No endpoint of the model can take the request now (circuits open, all busy).",
    "504": "The upstream did not answer within its timeouts.",
}


def openapi_json() -> bytes:
    """The document as JSON bytes (built on the first call, then cached)."""
    return _encoded()


@cache
def _encoded() -> bytes:
    return orjson.dumps(build_document())


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route the gateway serves."""
    schemas: dict[str, Any] = {**_ANSWER_SCHEMAS, **_ERROR_SCHEMAS}
    paths: dict[str, Any] = {}
    for path, (fmt, prefix, answer, summary) in _MODEL_CALLS.items():
        schemas[f"{prefix}Request"] = _request_schema(fmt, prefix, schemas)
        paths[path] = {"post": _model_call(path, fmt, prefix, answer, summary)}
    counted = {k: v for k, v in schemas["MessagesRequest"].items() if k != "required"}
    counted["required"] = [r for r in schemas["MessagesRequest"]["required"] if r != "max_tokens"]
    schemas["CountTokensRequest"] = {**counted, "title": "CountTokensRequest"}
    count = _operation(
        "countTokens",
        "Anthropic Messages: the input tokens of a body (the gateway's estimate; no model runs)",
        {"200": _json("The count", "TokenCount")},
        {s: _json(why, "AnthropicError") for s, why in _CALL_ERRORS.items() if s < "404"}
        | {"413": _json(_CALL_ERRORS["413"], "AnthropicError")},
        secured=True,
    )
    count["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF + "CountTokensRequest"}}},
    }
    paths["/v1/messages/count_tokens"] = {"post": count}
    paths["/v1/models"] = {
        "get": _operation(
            "listModels",
            "The configured entrypoints and models",
            {"200": _json("The models clients may name", "ModelList")},
            _openai_errors("401"),
            secured=True,
        )
    }
    paths["/v1/models/{id}"] = {
        "get": {
            **_operation(
                "getModel",
                "One entrypoint or model",
                {"200": _json("The model", "Model")},
                _openai_errors("401", "404"),
                secured=True,
            ),
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        }
    }
    paths["/v1/crossroads/endpoints"] = {
        "get": _operation(
            "listEndpoints",
            "Live state of every endpoint: load, latency, circuit",
            {"200": _json("Every endpoint's state", "EndpointList")},
            _openai_errors("401"),
            secured=True,
        )
    }
    feedback_errors = {
        "400": "The body is not JSON of the right shape (the error names the field).",
        "401": "Missing or unknown API key.",
        "403": "The trace was sent with another API key (only it or the admin key may).",
        "404": "No such trace (or past store.retention_days).",
        "409": "This (trace_id, source) already has a different reward.",
        "413": "The body is over feedback.max_body_bytes.",
        "422": "The reward is outside [0, 1] or an unknown label.",
    }
    feedback = _operation(
        "sendFeedback",
        "A reward for an answer, kept with its trace (idempotent per trace_id and source)",
        {"200": _json("The stored feedback (the same for a repeat)", "Feedback")},
        {s: _json(why, "OpenAIError") for s, why in feedback_errors.items()},
        secured=True,
    )
    feedback["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF + "FeedbackSend"}}},
    }
    paths["/v1/crossroads/feedback"] = {"post": feedback}
    paths["/health"] = {
        "get": _operation(
            "health", "Liveness: the process answers", {"200": _json("Alive", "Health")}, {}
        )
    }
    paths["/ready"] = {
        "get": _operation(
            "ready",
            "Readiness: the trace store is healthy",
            {
                "200": _json("Ready", "Readiness"),
                "503": _json("The trace store is failing", "Readiness"),
            },
            {},
        )
    }
    paths["/metrics"] = {
        "get": _operation(
            "metrics",
            "Prometheus metrics of every worker (at metrics.path; with "
            "metrics.require_admin_key, the admin key)",
            {
                "200": {
                    "description": "Prometheus text format, or OpenMetrics if accepted",
                    "content": {"text/plain": {}, "application/openmetrics-text": {}},
                }
            },
            {},
        )
    }
    paths["/openapi.json"] = {
        "get": _operation(
            "openapi",
            "This document (no API key needed)",
            {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            {},
        )
    }
    paths.update(_admin_paths())
    paths.update(_key_admin_paths())
    schemas.update(_ADMIN_SCHEMAS)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crossroads gateway",
            "version": __version__,
            "description": "An OpenAI- and Anthropic-compatible LLM router. Every path also "
            "answers without its /v1 prefix. Errors come in the OpenAI shape, except on "
            "/v1/messages, where they come in Anthropic's.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the admin key (server.admin_key_env)",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }


def _request_schema(fmt: str, prefix: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of ``fmt``'s validation model; its definitions go into ``schemas``
    under ``prefix`` (the formats reuse class names such as ``MessageModel``)."""
    from crossroads.formats import get_format

    model = getattr(get_format(fmt), _BODY_MODELS[fmt])
    template = _REF + prefix + "{model}"
    schema: dict[str, Any] = (
        model.model_json_schema(ref_template=template)
        if isinstance(model, type) and issubclass(model, BaseModel)
        else TypeAdapter(model).json_schema(ref_template=template)
    )
    for name, definition in schema.pop("$defs", {}).items():
        schemas[prefix + name] = definition
    schema["title"] = f"{prefix}Request"
    return schema


def _model_call(path: str, fmt: str, prefix: str, answer: str, summary: str) -> dict[str, Any]:
    ok = _json(
        "The answer" + (" (or, with stream: true, its event stream)" if fmt in _STREAMS else ""),
        answer,
    )
    if fmt in _STREAMS:
        ok["content"]["text/event-stream"] = {"schema": {"$ref": _REF + "StreamEvent"}}
    errors = _CALL_ERRORS
    shape = "AnthropicError" if fmt == "anthropic_messages" else "OpenAIError"
    operation = _operation(
        fmt,
        summary,
        {"200": ok},
        {status: _json(why, shape) for status, why in errors.items()},
        secured=True,
    )
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"{_REF}{prefix}Request"}}},
    }
    return operation


def _operation(
    op_id: str,
    summary: str,
    answers: dict[str, Any],
    errors: dict[str, Any],
    *,
    secured: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {**answers, **errors},
    }
    # With server.api_keys unset no key is needed: hence the empty alternative.
    if secured:
        operation["security"] = [{"bearer": []}, {"apiKey": []}, {}]
    return operation


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF + schema}}},
    }


def _openai_errors(*statuses: str) -> dict[str, Any]:
    why = {**_CALL_ERRORS, "404": "No such model."}
    return {status: _json(why[status], "OpenAIError") for status in statuses}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_STR_OR_NULL = {"type": ["string", "null"]}
_NUM_OR_NULL = {"type": ["number", "null"]}
_USAGE = _object(
    ["prompt_tokens", "completion_tokens", "total_tokens"],
    prompt_tokens=_INT,
    completion_tokens=_INT,
    total_tokens=_INT,
)

_ERROR_SCHEMAS: dict[str, Any] = {
    "OpenAIError": _object(
        ["error"],
        error=_object(
            ["message", "type"],
            message=_STR,
            type=_STR,
            param=_STR_OR_NULL,
            code=_STR_OR_NULL,
        ),
    ),
    "AnthropicError": _object(
        ["type", "error"],
        type={"const": "error"},
        error=_object(["type", "message"], type=_STR, message=_STR),
    ),
}

_ANSWER_SCHEMAS: dict[str, Any] = {
    "ChatCompletion": _object(
        ["id", "object", "created", "model", "choices"],
        id=_STR,
        object={"const": "chat.completion"},
        created=_INT,
        model=_STR,
        choices={
            "type": "array",
            "items": _object(["index", "message"], index=_INT, message=_object(["role"])),
        },
        usage=_USAGE,
    ),
    "TextCompletion": _object(
        ["id", "object", "created", "model", "choices"],
        id=_STR,
        object={"const": "text_completion"},
        created=_INT,
        model=_STR,
        choices={"type": "array", "items": _object(["index", "text"], index=_INT, text=_STR)},
        usage=_USAGE,
    ),
    "Message": _object(
        ["id", "type", "role", "model", "content", "stop_reason", "usage"],
        id=_STR,
        type={"const": "message"},
        role={"const": "assistant"},
        model=_STR,
        content={"type": "array", "items": _object(["type"], type=_STR)},
        stop_reason=_STR_OR_NULL,
        usage=_object(["input_tokens", "output_tokens"], input_tokens=_INT, output_tokens=_INT),
    ),
    "Response": _object(
        ["id", "object", "created_at", "status", "model", "output"],
        id=_STR,
        object={"const": "response"},
        created_at=_INT,
        status=_STR,
        model=_STR,
        output={"type": "array", "items": _object(["type"], type=_STR)},
    ),
    "EmbeddingList": _object(["data"], data={"type": "array"}, model=_STR_OR_NULL),
    "Model": _object(
        ["id", "object", "created", "owned_by"],
        id=_STR,
        object={"const": "model"},
        created=_INT,
        owned_by=_STR,
    ),
    "ModelList": _object(
        ["object", "data"],
        object={"const": "list"},
        data={"type": "array", "items": {"$ref": _REF + "Model"}},
    ),
    "EndpointList": _object(
        ["object", "data"],
        object={"const": "list"},
        data={
            "type": "array",
            "items": _object(
                ["model", "endpoint", "state", "in_flight"],
                model=_STR,
                endpoint=_STR,
                state=_STR,
                reason=_STR_OR_NULL,
                in_flight=_INT,
                ttft_ms=_NUM_OR_NULL,
                tpot_ms=_NUM_OR_NULL,
                served=_INT,
                failed=_INT,
                retry_after_s={"type": "number"},
            ),
        },
    ),
    # One server-sent event (OpenAPI 3.1 has the schema of an event stream describe each event).
    "StreamEvent": _object(["data"], data=_STR, event=_STR, id=_STR, retry=_INT),
    "Health": _object(["status"], status={"const": "ok"}),
    "TokenCount": _object(["input_tokens"], input_tokens=_INT),
    "Readiness": _object(
        ["status", "store"], status={"enum": ["ready", "degraded"]}, store={"type": "boolean"}
    ),
}


# ---------------------------------------------------------------------- the admin API

_ADMIN_ERRORS = {
    "400": "A parameter is unknown or wrong (the error names it).",
    "401": "Missing or wrong admin key.",
    "403": "The admin API is off (server.admin_key_env is unset).",
    "503": "The trace store did not answer within ui.query_timeout_s.",
}
_FILTERS = {
    "since": ("number", "traces created at or after this (unix seconds)"),
    "until": ("number", "traces created before this (unix seconds)"),
    "window": ("number", "seconds up to until (or now); not with since"),
    "model": ("string", "the model that answered (else the one routed to)"),
    "decision": ("string", "the decision, or explicit"),
    "status": ("string", "ok (below 400), error (400 and up) or an HTTP status"),
    "key": ("string", "the API key's name"),
    "team": ("string", "the key's team"),
    "format": ("string", "the client's wire format, e.g. openai_chat"),
    "q": ("string", "a prefix of the trace id"),
}


def _query(*names: str, **extra: tuple[str, str]) -> list[dict[str, Any]]:
    table = {**_FILTERS, **extra}
    return [
        {"name": n, "in": "query", "description": table[n][1], "schema": {"type": table[n][0]}}
        for n in (*names, *extra)
    ]


def _admin(
    op_id: str, summary: str, schema: str, *errors: str, parameters: list[Any] | None = None
) -> dict[str, Any]:
    operation = _operation(
        op_id,
        summary,
        {"200": _json(summary, schema)},
        {s: _json(_ADMIN_ERRORS.get(s, "Not found."), "OpenAIError") for s in errors},
    )
    operation["security"] = [{"adminKey": []}]
    operation["tags"] = ["admin"]
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _admin_paths() -> dict[str, Any]:
    """The dashboard's JSON API (crossroads.dashboard.api) and the page itself."""
    base = ("400", "401", "403", "503")
    prefix = "/v1/crossroads/admin"
    path_id = {"name": "id", "in": "path", "required": True, "schema": _STR}
    path_name = {"name": "name", "in": "path", "required": True, "schema": _STR}
    plot = _admin("getEvalPlot", "A plot of the latest evaluation report", "Object", *base, "404")
    plot["get"]["responses"]["200"] = {"description": "PNG", "content": {"image/png": {}}}
    plot["get"]["parameters"] = [path_name]
    page = _operation(
        "dashboard",
        "The dashboard: a static page that asks for the admin key and calls the admin API",
        {
            "200": {
                "description": "index.html (also as an empty name), dashboard.js, crossroads.css "
                "or favicon.svg",
                "content": {
                    kind: {}
                    for kind in ("text/html", "text/javascript", "text/css", "image/svg+xml")
                },
            }
        },
        {
            "403": _json(_ADMIN_ERRORS["403"], "OpenAIError"),
            "404": _json("No such file.", "OpenAIError"),
        },
    )
    page["parameters"] = [{**path_name, "name": "file"}]
    return {
        f"{prefix}/traces": _admin(
            "listTraces",
            "Trace summaries, newest first, filtered, by pages",
            "TraceList",
            *base,
            parameters=_query(
                *_FILTERS,
                limit=("integer", "rows per page, 1 to 200 (50)"),
                cursor=("string", "next_cursor of the previous page"),
            ),
        ),
        f"{prefix}/traces/{{id}}": _admin(
            "getTrace",
            "One whole trace (signals, rules tried, candidates, attempts) and its counterfactual costs",
            "Object",
            *base,
            "404",
            parameters=[path_id],
        ),
        f"{prefix}/stats": _admin(
            "traceStats",
            "Aggregates of a window: rate, latency, decisions and models over time, spend, savings",
            "TraceStats",
            *base,
            parameters=_query(*_FILTERS, buckets=("integer", "time buckets, 1 to 500 (60)")),
        ),
        f"{prefix}/endpoints": _admin(
            "adminEndpoints", "Live endpoint state and the trace store's counters", "Object", *base
        ),
        f"{prefix}/settings": _admin(
            "adminSettings",
            "Models and prices, decisions, keys, teams, the reference model",
            "Object",
            *base,
        ),
        f"{prefix}/eval": _admin(
            "latestEval",
            "The latest evaluation report under ui.eval_reports",
            "Object",
            *base,
            "404",
        ),
        f"{prefix}/eval/{{name}}": plot,
        "/ui/{file}": {"get": page},
    }


_ADMIN_SCHEMAS: dict[str, Any] = {
    "Object": {"type": "object"},
    "TraceList": _object(
        ["object", "data", "next_cursor"],
        object={"const": "list"},
        data={"type": "array", "items": {"type": "object"}},
        next_cursor=_STR_OR_NULL,
    ),
    "TraceStats": _object(
        ["requests", "errors", "rate_per_s", "latency_ms", "spend", "series"],
        requests=_INT,
        errors=_INT,
        rate_per_s={"type": "number"},
        latency_ms={"type": "object"},
        spend={"type": "object"},
        series={"type": "object"},
    ),
}


# ---------------------------------------------------------------------- keys, teams, spend

_KEY_ERRORS = {
    "400": "A field or parameter is wrong (the error names it), or store.keys is unset.",
    "401": "Missing or wrong admin key.",
    "403": "The admin API is off (server.admin_key_env is unset).",
    "404": "No such key or team.",
    "409": "An active key has the name, the key is revoked, or the team still has keys.",
    "422": "The reload was refused (invalid config, or a restart-only section changed).",
}
_POLICY = {"type": "object", "description": "models, operations, rpm, tpm, budgets, metadata"}


def _key_op(
    op_id: str,
    summary: str,
    schema: str,
    errors: str,
    status: str = "200",
    parameters: list[Any] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    operation = _operation(
        op_id,
        summary,
        {status: _json(summary, schema)},
        {code: _json(_KEY_ERRORS[code], "OpenAIError") for code in errors.split()},
    )
    operation["security"] = [{"adminKey": []}]
    operation["tags"] = ["admin"]
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF + body}}},
        }
    return operation


def _key_admin_paths() -> dict[str, Any]:
    """Virtual keys, teams and spend (crossroads.gateway.admin)."""
    prefix = "/v1/crossroads/admin"
    ref = [{"name": "ref", "in": "path", "required": True, "schema": _STR}]
    name = [{"name": "name", "in": "path", "required": True, "schema": _STR}]
    day = {"type": "string", "description": "a UTC day YYYY-MM-DD or unix seconds"}
    spend = [
        {"name": "by", "in": "query", "schema": _STR, "description": "some of key,team,model,day"},
        {"name": "since", "in": "query", "schema": day},
        {"name": "until", "in": "query", "schema": day},
    ]
    revoked = [{"name": "include_revoked", "in": "query", "schema": {"type": "boolean"}}]
    return {
        f"{prefix}/keys": {
            "get": _key_op("listKeys", "Virtual keys (never their values)", "Object", "400 401 403", parameters=revoked),
            "post": _key_op("createKey", "Create a key; its value is in key, once", "IssuedKey", "400 401 403 409", "201", body="KeyCreate"),
        },
        f"{prefix}/keys/{{ref}}": {
            "get": _key_op("getKey", "One key, by id or name", "VirtualKey", "400 401 403 404", parameters=ref),
            "delete": _key_op("revokeKey", "Revoke a key: it stops working at once", "VirtualKey", "400 401 403 404", parameters=ref),
        },
        f"{prefix}/keys/{{ref}}/rotate": {
            "post": _key_op("rotateKey", "A new value; the old one stops working at once", "IssuedKey", "400 401 403 404 409", parameters=ref),
        },
        f"{prefix}/teams": {
            "get": _key_op("listTeams", "The key store's teams", "Object", "400 401 403"),
            "post": _key_op("setTeam", "Create a team or replace its policy", "Team", "400 401 403", body="TeamSet"),
        },
        f"{prefix}/teams/{{name}}": {
            "get": _key_op("getTeam", "One team", "Team", "400 401 403 404", parameters=name),
            "delete": _key_op("deleteTeam", "Delete a team no active key belongs to", "Object", "400 401 403 404 409", parameters=name),
        },
        f"{prefix}/spend": {
            "get": _key_op("spend", "Requests, tokens and cost per key, team, model or day", "Object", "400 401 403", parameters=spend),
        },
        f"{prefix}/reload": {
            "post": _key_op("reload", "Read the config file and router artifacts again and serve them; 422: refused, the old config serves", "Object", "401 403 422"),
        },
    }  # fmt: skip


_KEY = {
    "id": _STR,
    "object": {"const": "crossroads.key"},
    "name": _STR,
    "team": _STR_OR_NULL,
    "policy": _POLICY,
    "display": _STR,
    "status": {"enum": ["active", "expired", "revoked"]},
    "created_at": {"type": "number"},
    "rotated_at": _NUM_OR_NULL,
    "revoked_at": _NUM_OR_NULL,
    "expires_at": _NUM_OR_NULL,
}
_ADMIN_SCHEMAS.update(
    {
        "VirtualKey": _object(list(_KEY), **_KEY),
        "IssuedKey": _object([*_KEY, "key"], **_KEY, key=_STR),
        "Team": _object(["name", "policy"], name=_STR, policy=_POLICY),
        "KeyCreate": {
            **_object(
                ["name"],
                name=_STR,
                team=_STR_OR_NULL,
                policy=_POLICY,
                expires_at=_NUM_OR_NULL,
                expires_in_days=_NUM_OR_NULL,
            ),
            "additionalProperties": False,
        },
        "TeamSet": {**_object(["name"], name=_STR, policy=_POLICY), "additionalProperties": False},
        "FeedbackSend": {
            **_object(
                ["trace_id", "reward"],
                trace_id=_STR,
                reward={
                    "oneOf": [
                        {"type": "number", "minimum": 0, "maximum": 1},
                        {"type": "string", "description": "up, down or a feedback.labels name"},
                    ]
                },
                source={"type": "string", "default": "client"},
                comment=_STR_OR_NULL,
                metadata={"type": ["object", "null"]},
            ),
            "additionalProperties": False,
        },
        "Feedback": _object(
            ["object", "trace_id", "source", "reward"],
            object={"const": "crossroads.feedback"},
            trace_id=_STR,
            source=_STR,
            reward={"type": "number"},
            label=_STR_OR_NULL,
            comment=_STR_OR_NULL,
            metadata={"type": "object"},
            created_at={"type": "number"},
            decision=_STR_OR_NULL,
            model=_STR_OR_NULL,
        ),
    }
)
