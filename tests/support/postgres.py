"""A throwaway PostgreSQL schema per test: created on the local server, dropped after.

The server is ``$CROSSROADS_TEST_POSTGRES`` (a libpq URL), else 127.0.0.1:5432, database
``test``, as user ``postgres`` or ``root``. Tests skip, saying why, when there is none.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)


@functools.cache
def server_url() -> tuple[str | None, str]:
    """The URL of a reachable server and, when there is none, why."""
    try:
        import psycopg
    except ImportError:
        return None, 'psycopg is not installed (pip install "crossroads[postgres]")'
    candidates = (
        [os.environ["CROSSROADS_TEST_POSTGRES"]]
        if os.environ.get("CROSSROADS_TEST_POSTGRES")
        else list(CANDIDATES)
    )
    reasons = []
    for url in candidates:
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return url, ""
        except psycopg.Error as exc:
            reasons.append(f"{url}: {str(exc).strip()}")
    return None, "no PostgreSQL server: " + "; ".join(reasons)


def with_schema(url: str, schema: str) -> str:
    """``url`` with its search_path set to ``schema`` (and its connections named after it)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}&application_name={schema}"


@contextmanager
def temporary_schema(url: str) -> Iterator[str]:
    """A new schema on the server at ``url``; yields a URL that uses it; drops it after."""
    import psycopg

    schema = f"crossroads_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_schema(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            # Connections a test left open (a gateway's listener) would block the drop.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND application_name = %s",
                (schema,),
            )
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
