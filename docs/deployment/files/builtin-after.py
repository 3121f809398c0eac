# After: this package's backend; nothing else changes.
Q_CLUSTER = {
    "name": "mysite",
    "orm": "default",
    "workers": 2,
    "timeout": 30,
    "retry": 45,
    "ALT_CLUSTERS": {"high": {"timeout": 10, "retry": 20}},
}

PRODUCTION_PROCESSES = {
    "worker": {"BACKEND": "djangoq2"},
    "worker-high": {
        "BACKEND": "djangoq2",
        "ARGS": {"cluster-name": "high"},
    },
}
