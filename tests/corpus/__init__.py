"""Real ``Q_CLUSTER`` settings of public Django projects, as test data.

Every entry keeps the keys, values and shapes that the project writes. Only what cannot run
here is changed, and each entry says what in ``adaptation``: broker locations point at the
tests' own ``redis-server``, secrets are dropped, and environment (or config file) lookups take
their defaults. ORM entries run on the tests' SQLite file, or on the tests' PostgreSQL where the
project runs PostgreSQL. ``commit`` is the version of the file that was read.
"""

from __future__ import annotations

import socket

from tests.corpus.model import (
    DJANGO_DEFAULT_CACHES,
    REDIS_HOST,
    REDIS_PORT,
    Entry,
    InProject,
    RedisLocation,
    located,
    redis_url,
)

__all__ = [
    "CORPUS",
    "DJANGO_DEFAULT_CACHES",
    "RETRY_NOT_ABOVE_TIMEOUT",
    "SEVERAL_BROKERS",
    "Entry",
    "RedisLocation",
    "located",
]

# Worker-only concerns: Warnings in `manage.py check`, refusals at a worker's start.
RETRY_NOT_ABOVE_TIMEOUT = "prodserver_djangoq2.E009"
SEVERAL_BROKERS = "prodserver_djangoq2.E002"

CORPUS = [
    Entry(
        name="inventree-worker",
        repository="inventree/InvenTree",
        path="src/backend/InvenTree/InvenTree/setting/worker.py",
        commit="21f80209f09247c1cb05ac8f29be815379ddb3f0",
        q_cluster={
            "name": "InvenTree",
            "label": "Background Tasks",
            "workers": 1,
            "timeout": 90,
            "retry": 300,
            "max_attempts": 5,
            "save_limit": 1000,
            "queue_limit": 50,
            "catch_up": False,
            "bulk": 10,
            "orm": "default",
            "cache": "default",
            "sync": False,
            "poll": 1.5,
        },
        # InvenTree/cache.py get_cache_config(global_cache=False), commit 0118355f.
        caches={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        adaptation="get_worker_config('sqlite') with every INVENTREE_BACKGROUND_* at its "
        "default, no global cache (so one worker), no Sentry DSN (so no error_reporter).",
    ),
    Entry(
        name="inventree-global-cache",
        repository="inventree/InvenTree",
        path="src/backend/InvenTree/InvenTree/settings.py",
        commit="001ddf2cee639f67e1097f3012209f9fc9de6340",
        q_cluster={
            "name": "InvenTree",
            "label": "Background Tasks",
            "workers": 4,
            "timeout": 90,
            "retry": 120,
            "max_attempts": 5,
            "queue_limit": 50,
            "catch_up": False,
            "bulk": 10,
            "orm": "default",
            "cache": "default",
            "sync": False,
            "poll": 1.5,
            # Set when the global Redis cache is enabled; CACHES has no 'worker' alias, and
            # Django-Q2 takes 'orm' first anyway.
            "django_redis": "worker",
        },
        # InvenTree/cache.py get_cache_config(global_cache=True), commit 0118355f.
        caches={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_url(0),
                "OPTIONS": {
                    "CLIENT_CLASS": "django_redis.client.DefaultClient",
                    "SOCKET_CONNECT_TIMEOUT": 5,
                    "SOCKET_TIMEOUT": 3,
                    "CONNECTION_POOL_KWARGS": {
                        "socket_keepalive": True,
                        "socket_keepalive_options": {
                            socket.TCP_KEEPCNT: 5,
                            socket.TCP_KEEPIDLE: 1,
                            socket.TCP_KEEPINTVL: 1,
                            socket.TCP_USER_TIMEOUT: 1000,
                        },
                    },
                },
            }
        },
        database="postgres",
        adaptation="As a process with the global cache on evaluates it (web server, worker): "
        "INVENTREE_CACHE_HOST set, so four workers and 'django_redis'; cache host and port are "
        "the tests' Redis, no cache password; other settings at their defaults, no Sentry DSN.",
        silenced_at_start=(SEVERAL_BROKERS,),
    ),
    Entry(
        name="paperless-ng",
        repository="jonaswinkler/paperless-ng",
        path="src/paperless/settings.py",
        commit="1ac98c96bc7eded76a97800ee47483bddedee476",
        q_cluster={
            "name": "paperless",
            "catch_up": False,
            "recycle": 1,
            "retry": 1800,
            "timeout": 1800,
            "workers": 2,
            "redis": redis_url(),
        },
        adaptation="PAPERLESS_REDIS (default redis://localhost:6379) is the tests' Redis; "
        "PAPERLESS_TASK_WORKERS unset, so default_task_workers() gives 2 on two cores.",
    ),
    Entry(
        name="django-q2-tests",
        repository="django-q2/django-q2",
        path="django_q/tests/settings.py",
        commit="b8b654c49afe0903e961517f045471c7327b8800",
        q_cluster={
            "name": "django_q_test",
            "cpu_affinity": 1,
            "testing": True,
            "log_level": "DEBUG",
            "django_redis": "default",
            "redis": redis_url(0),
        },
        caches={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_url(0),
                "OPTIONS": {
                    "CLIENT_CLASS": "django_redis.client.DefaultClient",
                    "PARSER_CLASS": "redis.connection.DefaultParser",
                },
            }
        },
        django_settings={"TIME_ZONE": "Europe/Amsterdam", "USE_TZ": True},
        adaptation="REDIS_HOST (default 'redis') is the tests' Redis, in both 'redis' and the "
        "django-redis cache, which stay one server; PARSER_CLASS is the one of the 1.11.1 "
        "release (the commit read names HiredisParser, and hiredis is not installed here).",
    ),
    Entry(
        name="django-q2-example",
        repository="django-q2/django-q2",
        path="exampleproject/settings.py",
        commit="df60dcb13b5a8272c1885c31b6a1f2f2e410b2d3",
        q_cluster={
            "name": "DjangORM",
            "workers": 4,
            "timeout": 90,
            "retry": 120,
            "queue_limit": 50,
            "bulk": 10,
            "orm": "default",
        },
        django_settings={"TIME_ZONE": "UTC", "USE_TZ": True},
        adaptation="None: the example project's own SQLite broker.",
    ),
    Entry(
        name="django-q2-docs-alt-clusters",
        repository="django-q2/django-q2",
        path="docs/configure.rst",
        commit="366710d475c5fb2f931c61e2a739884b2522c136",
        q_cluster={
            "name": "myproject",
            "workers": 8,
            "recycle": 500,
            "timeout": 60,
            "compress": True,
            "save_limit": 250,
            "queue_limit": 500,
            "cpu_affinity": 1,
            "label": "Django Q2",
            "redis": {"host": REDIS_HOST, "port": REDIS_PORT, "db": 0},
            "ALT_CLUSTERS": {
                "long": {"timeout": 3000, "retry": 3600, "max_attempts": 2},
                "short": {"timeout": 10, "max_attempts": 1},
            },
        },
        adaptation="Redis host and port (127.0.0.1:6379) are the tests' Redis.",
        alt_cluster="short",
    ),
    Entry(
        name="django-q2-docs-django-redis",
        repository="django-q2/django-q2",
        path="docs/configure.rst",
        commit="366710d475c5fb2f931c61e2a739884b2522c136",
        q_cluster={"name": "DJRedis", "workers": 4, "timeout": 90, "django_redis": "default"},
        caches={"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url(0)}},
        adaptation="The example presumes a django-redis 'default' cache: one on the tests' Redis.",
    ),
    Entry(
        name="archery",
        repository="hhyo/Archery",
        path="archery/settings.py",
        commit="00e8bf06efe40374116a14336fde9a9cb3ea3fea",
        q_cluster={
            "name": "archery",
            "workers": 4,
            "recycle": 500,
            "timeout": 60,
            "compress": True,
            "cpu_affinity": 1,
            "save_limit": 0,
            "queue_limit": 50,
            "label": "Django Q",
            "django_redis": "default",
            "sync": False,
        },
        # env.cache() of CACHE_URL's default, redis://127.0.0.1:6379/0, is a django-redis cache.
        caches={"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url(0)}},
        django_settings={"TIME_ZONE": "Asia/Shanghai", "USE_TZ": False},
        adaptation="Q_CLUISTER_WORKERS, Q_CLUISTER_TIMEOUT and Q_CLUISTER_SYNC at their defaults; "
        "CACHE_URL is the tests' Redis; the MySQL DATABASE_URL is the tests' SQLite.",
    ),
    Entry(
        name="ghostwriter",
        repository="GhostManager/Ghostwriter",
        path="config/settings/base.py",
        commit="000ebc266a7349f90cadcdfced2b6e62838da465",
        q_cluster={
            "name": "soar",
            "timeout": 43200,
            "retry": 43200,
            "recycle": 500,
            "save_limit": 35,
            "queue_limit": 500,
            "cpu_affinity": 1,
            "label": "Django Q",
            "redis": {"host": REDIS_HOST, "port": REDIS_PORT, "db": 0},
        },
        adaptation="DJANGO_QCLUSTER_NAME at its default; QCLUSTER_CONNECTION's default dict "
        "(host 'redis', port 6379) is the tests' Redis.",
    ),
    Entry(
        name="librephotos",
        repository="LibrePhotos/librephotos",
        path="librephotos/settings/production.py",
        commit="067372cedc7b7afc1d8f97bac40b444b80ac7afe",
        q_cluster={
            "name": "DjangORM",
            "queue_limit": 50,
            "recycle": 50,
            "timeout": 10000000,
            "retry": 20000000,
            "orm": "default",
            "max_rss": 300000,
            "poll": 1,
        },
        database="postgres",
        django_settings={"TIME_ZONE": "UTC", "USE_TZ": True},
        adaptation="DB_* lookups are the tests' PostgreSQL; no password.",
    ),
    Entry(
        name="docker-mailman",
        repository="maxking/docker-mailman",
        path="web/mailman-web/settings.py",
        commit="0e84bea05c159986a6ecb22e1f3f5353e9b455ff",
        q_cluster={"timeout": 300, "retry": 300, "save_limit": 100, "orm": "default"},
        database="postgres",
        django_settings={"TIME_ZONE": "UTC", "USE_TZ": True},
        adaptation="DATABASE_URL is the tests' PostgreSQL.",
        silenced_at_start=(RETRY_NOT_ABOVE_TIMEOUT,),
    ),
    Entry(
        name="municipal-money",
        # A fork of OpenUpSA/municipal-data; the upstream file read has no Q_CLUSTER yet.
        repository="13garthbaker/municipal-data",
        path="municipal_finance/settings.py",
        commit="8617f02a20abfd917ff88a9825b73aaaf88d8a74",
        q_cluster={
            "name": "DjangORM",
            "workers": 1,
            "timeout": 3600,
            "retry": 700,
            "queue_limit": 100,
            "bulk": 50,
            "orm": "default",
            "poll": 5,
            "max_attempts": 1,
            "ack_failures": True,
        },
        adaptation="The PostgreSQL DATABASE_URL is the tests' SQLite.",
        silenced_at_start=(RETRY_NOT_ABOVE_TIMEOUT,),
    ),
    Entry(
        name="votong",
        repository="code4romania/votong",
        path="backend/civil_society_vote/settings.py",
        commit="0459f4b3f81eaf3fa0389438ddb7be7f4ab02ea2",
        q_cluster={
            "name": "votong",
            "workers": 1,
            "recycle": 100,
            "timeout": 900,
            "retry": 1200,
            "ack_failures": True,
            "max_attempts": 2,
            "compress": True,
            "save_limit": 200,
            "queue_limit": 4,
            "cpu_affinity": 1,
            "label": "Django Q2",
            "orm": "default",
            "poll": 2,
            "guard_cycle": 3,
            "catch_up": False,
        },
        caches={
            "default": {
                "BACKEND": "django.core.cache.backends.db.DatabaseCache",
                "LOCATION": "factory_cache_default",
                "TIMEOUT": 600,
            },
            "file_resubmit": {
                "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                "LOCATION": InProject("file_resubmit"),
            },
        },
        database="postgres",
        django_settings={"TIME_ZONE": "Europe/Bucharest", "USE_TZ": True},
        adaptation="BACKGROUND_WORKERS_COUNT, ENABLE_CACHE and TIME_ZONE at their defaults; "
        "DATABASE_* are the tests' PostgreSQL; file_resubmit's /tmp directory is in the project.",
    ),
    Entry(
        name="redirectioneaza",
        repository="code4romania/redirectioneaza",
        path="backend/redirectioneaza/settings/django_q.py",
        commit="427620fb7bd49a03bb4cddb895dc527063f38056",
        q_cluster={
            "name": "redirect",
            "workers": 1,
            "recycle": 100,
            "timeout": 900,
            "retry": 1200,
            "ack_failures": True,
            "max_attempts": 2,
            "compress": True,
            "save_limit": 200,
            "cpu_affinity": 1,
            "label": "Django Q2",
            "orm": "default",
            "poll": 4,
            "guard_cycle": 3,
            "catch_up": False,
        },
        # settings/cache.py with ENABLE_CACHE at its default, commit 1629ca29.
        caches={
            "default": {
                "BACKEND": "django.core.cache.backends.db.DatabaseCache",
                "LOCATION": "redirect_cache_default",
                "TIMEOUT": 900,
            }
        },
        adaptation="DJANGO_Q_* at the defaults of settings/environment.py (commit 06ae95c1); "
        "the MySQL database is the tests' SQLite.",
    ),
    Entry(
        name="django-q2-full-of-juice",
        repository="tinuvi/django-q2-full-of-juice",
        path="sample-project/sample/settings.py",
        commit="68b5803d84716fc2f19a38a4b25ba9a32d4cc5dd",
        q_cluster={
            "name": "sample-cluster",
            "workers": 2,
            "timeout": 10,
            "retry": 15,
            "ack_failures": True,
            "max_attempts": 3,
            "orm": "default",
            "sync": False,
            "catch_up": False,
            "save_limit": 200,
        },
        caches={
            "default": {
                "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                "LOCATION": InProject("django-cache"),
            }
        },
        django_settings={"TIME_ZONE": "UTC", "USE_TZ": True},
        adaptation="Q_CLUSTER_NAME and Q_CLUSTER_WORKERS at their defaults; SAMPLE_DATA_DIR is "
        "the project's directory; the SQLite database is the tests' one.",
    ),
    Entry(
        name="django-qraft-demo",
        repository="ankitksr/django-qraft",
        path="demo/demo/settings.py",
        commit="1a886358d636ab94ad8169f9dba809833c4804d5",
        q_cluster={
            "name": "baseline",
            "workers": 2,
            "timeout": 300,
            "retry": 600,
            "orm": "default",
            "ALT_CLUSTERS": {
                "qraft": {
                    "name": "qraft",
                    "workers": 2,
                    "timeout": 300,
                    "retry": 600,
                    "orm": "default",
                }
            },
        },
        django_settings={"TIME_ZONE": "UTC", "USE_TZ": True},
        adaptation="DEMO_USE_POSTGRES unset, so SQLite.",
        alt_cluster="qraft",
    ),
    Entry(
        name="wazimap-ng",
        repository="OpenUpSA/wazimap-ng",
        path="wazimap_ng/config/qcluster.py",
        commit="0fd443b705354e2d7cb01df93bae5e5e2171aeb9",
        q_cluster={"redis": redis_url()},
        adaptation="REDIS_URL (no default) is the tests' Redis.",
    ),
    Entry(
        name="today-tv",
        repository="star-plan/today-tv-django",
        path="src/config/settings/components/django_q.py",
        commit="6fd089c0b9f6438ad33efb5fda7edf5f41e51f4b",
        q_cluster={
            "name": "today_tv",
            "workers": 4,
            "recycle": 500,
            "timeout": 60,
            "compress": True,
            "cpu_affinity": 1,
            "save_limit": 250,
            "queue_limit": 500,
            "label": "Django Q",
            "redis": {"host": REDIS_HOST, "port": REDIS_PORT, "db": 2},
        },
        adaptation="DOCKER off, so host 'localhost'; host and port are the tests' Redis.",
    ),
]
