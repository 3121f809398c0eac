# Before: django-prodserver's built-in backend.
Q_CLUSTER = {
    "name": "mysite",
    "orm": "default",
    "workers": 2,
    "timeout": 30,
    "retry": 45,
    "ALT_CLUSTERS": {"high": {"timeout": 10, "retry": 20}},
}

PRODUCTION_PROCESSES = {
    "worker": {"BACKEND": "django_prodserver.backends.workers.django_q2.DjangoQ2Worker"},
    "worker-high": {
        "BACKEND": "django_prodserver.backends.workers.django_q2.DjangoQ2Worker",
        "ARGS": {"cluster-name": "high"},
    },
}
