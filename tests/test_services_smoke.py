"""The broker servers the end-to-end tests rely on really start and answer."""

from __future__ import annotations

from tests.services import Postgres, Server


def test_redis_server_answers(redis_server: Server) -> None:
    import redis

    assert redis.Redis(host=redis_server.host, port=redis_server.port).ping()


def test_postgres_server_answers(postgres_server: Postgres) -> None:
    import psycopg

    entry = postgres_server.create_database("smoke")
    with psycopg.connect(
        host=postgres_server.host, port=postgres_server.port, user="postgres", dbname=entry["NAME"]
    ) as connection:
        assert connection.execute("select 1").fetchone() == (1,)
