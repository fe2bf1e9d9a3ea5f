"""Django settings for cdcrecon, read from the environment through django-environ.

Every variable, its default and its meaning is listed in README.md ("Configuration").
A bad value stops start-up with ImproperlyConfigured naming the variable.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from cdcrecon import security
from cdcrecon.conf import (
    CassandraSettings,
    TargetSettings,
    load_broker_transport_options,
    load_reconciliation_settings,
    read_variable,
    require_valid,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# FileAwareEnv also reads NAME_FILE (container secrets): SECRET_KEY_FILE, DATABASE_URL_FILE, ...
env = environ.FileAwareEnv()

DEBUG = read_variable(env, "DEBUG", "true or false", env.bool, False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG and env.bool("CDCRECON_REQUIRE_SECRET_KEY", default=False):
        raise ImproperlyConfigured("SECRET_KEY is empty: set it to a long random string.")
    # A development default; production deployments set SECRET_KEY (docker-compose does).
    SECRET_KEY = "cdcrecon-development-only-secret-key-change-me-0123456789"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list(
    "CSRF_TRUSTED_ORIGINS", default=["http://127.0.0.1:8080", "http://localhost:8080"]
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "knox",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "reconciliation",
    "gdpr",
]

MIDDLEWARE = [
    # Outermost: any error answer outside the admin leaves as the JSON envelope.
    "cdcrecon.api.errors.JsonErrorMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns django-axes' lockout flag into its 429 answer (cdcrecon.security).
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "cdcrecon.urls"
WSGI_APPLICATION = "cdcrecon.wsgi.application"
APPEND_SLASH = False
CSRF_FAILURE_VIEW = "cdcrecon.api.errors.csrf_failure"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": read_variable(
        env,
        "DATABASE_URL",
        "a postgres:// URL",
        env.db_url,
        "postgres://cdcrecon@127.0.0.1:5432/cdcrecon",
    )
}
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out username+IP before any password is checked.
AUTHENTICATION_BACKENDS = [
    "cdcrecon.backends.LockoutBackend",  # django-axes' AxesStandaloneBackend
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".local" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- the two stores being reconciled ------------------------------------------------------
cassandra_port = read_variable(env, "CASSANDRA_PORT", "a TCP port number", env.int, 9042)
require_valid(0 < cassandra_port < 65536, "CASSANDRA_PORT", cassandra_port, "a TCP port number")
CASSANDRA = CassandraSettings(
    hosts=tuple(env.list("CASSANDRA_HOSTS", default=["127.0.0.1"])),
    port=cassandra_port,
    keyspace=env.str("CASSANDRA_KEYSPACE", default="warehouse"),
    username=env.str("CASSANDRA_USERNAME", default="") or None,
    password=env.str("CASSANDRA_PASSWORD", default="") or None,
    local_dc=env.str("CASSANDRA_LOCAL_DC", default="datacenter1"),
    consistency=env.str("CASSANDRA_CONSISTENCY", default="LOCAL_QUORUM").upper(),
    # 5 for Cassandra 4.0 and later; set 4 for a 3.x cluster.
    protocol_version=read_variable(env, "CASSANDRA_PROTOCOL_VERSION", "3, 4 or 5", env.int, 5),
)
_CONSISTENCY_LEVELS = {
    "ONE",
    "TWO",
    "THREE",
    "QUORUM",
    "ALL",
    "LOCAL_QUORUM",
    "EACH_QUORUM",
    "LOCAL_ONE",
}
require_valid(
    CASSANDRA.consistency in _CONSISTENCY_LEVELS,
    "CASSANDRA_CONSISTENCY",
    CASSANDRA.consistency,
    "one of " + ", ".join(sorted(_CONSISTENCY_LEVELS)),
)
TARGET = TargetSettings(
    database_url=env.str(
        "TARGET_DATABASE_URL", default="postgres://cdcrecon@127.0.0.1:5432/warehouse"
    ),
    schema=env.str("POSTGRES_SCHEMA", default="public"),
)

RECONCILIATION = load_reconciliation_settings(env)

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = None
# A task whose worker died is redelivered after CELERY_VISIBILITY_TIMEOUT_SECONDS (default
# 300), not after Celery's hour (cdcrecon.conf.load_broker_transport_options).
CELERY_BROKER_TRANSPORT_OPTIONS = load_broker_transport_options(env)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = RECONCILIATION.job_time_limit_seconds + 60
CELERY_TASK_SOFT_TIME_LIMIT = RECONCILIATION.job_time_limit_seconds
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- security (README, "Production") -----------------------------------------------------
# Secure cookies whenever DEBUG is off; SECURE_COOKIES=false only for plain-http development
# (`make run` sets it: browsers drop Secure cookies sent over http, so no admin login).
SECURE_COOKIES = security.read_flag(env, "SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = security.read_flag(env, "SESSION_COOKIE_SECURE", SECURE_COOKIES)
CSRF_COOKIE_SECURE = security.read_flag(env, "CSRF_COOKIE_SECURE", SECURE_COOKIES)
SECURE_SSL_REDIRECT = security.read_flag(env, "SECURE_SSL_REDIRECT", False)
# Probes and Prometheus scrape over plain http inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = read_variable(
    env, "SECURE_HSTS_SECONDS", "a whole number of seconds >= 0", env.int, 0
)
require_valid(SECURE_HSTS_SECONDS >= 0, "SECURE_HSTS_SECONDS", SECURE_HSTS_SECONDS, "a number >= 0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = security.read_flag(env, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = security.read_flag(env, "SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = security.proxy_ssl_header(env.str("SECURE_PROXY_SSL_HEADER", default=""))
# Proxies in front of the app whose X-Forwarded-For is trusted (throttling and lockouts key
# on the client IP); 0 means the TCP peer is the client.
TRUSTED_PROXY_COUNT = read_variable(env, "TRUSTED_PROXY_COUNT", "a whole number >= 0", env.int, 0)
require_valid(TRUSTED_PROXY_COUNT >= 0, "TRUSTED_PROXY_COUNT", TRUSTED_PROXY_COUNT, ">= 0")

# The default cache holds the API's request counts: Redis, so every worker and host shares
# them.  Default: the broker's Redis server, database 1.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env.str("CACHE_URL", default=security.redis_cache_url(CELERY_BROKER_URL)),
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="cdcrecon"),
    }
}

# API tokens (django-rest-knox, digests only) expire after API_TOKEN_TTL_HOURS; 0: never.
API_TOKEN_TTL_HOURS = read_variable(
    env, "API_TOKEN_TTL_HOURS", "a number of hours >= 0", env.float, 720.0
)
_RATE_RULE = "a rate like 100/minute (a number, then /second, /minute, /hour or /day)"


def _rate(name: str, default: str) -> str:
    value = env.str(name, default=default).strip()
    require_valid(
        bool(re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", value)),
        name,
        value,
        _RATE_RULE,
    )
    return value


API_THROTTLE_ANON = _rate("API_THROTTLE_ANON", "60/minute")
API_THROTTLE_USER = _rate("API_THROTTLE_USER", "1200/minute")
API_THROTTLE_MUTATIONS = _rate("API_THROTTLE_MUTATIONS", "30/minute")

# django-axes: AXES_FAILURE_LIMIT failed logins lock that username from that IP for
# AXES_COOLOFF_MINUTES (0: until an admin deletes the attempt in the admin).  Failed API
# tokens count too, under the username "(API token)" (cdcrecon.api.tokens).
AXES_FAILURE_LIMIT = read_variable(env, "AXES_FAILURE_LIMIT", "a whole number > 0", env.int, 5)
require_valid(AXES_FAILURE_LIMIT > 0, "AXES_FAILURE_LIMIT", AXES_FAILURE_LIMIT, "> 0")
_cooloff_minutes = read_variable(
    env, "AXES_COOLOFF_MINUTES", "a number of minutes >= 0", env.float, 15.0
)
require_valid(_cooloff_minutes >= 0, "AXES_COOLOFF_MINUTES", _cooloff_minutes, ">= 0")
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff_minutes) if _cooloff_minutes else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "cdcrecon.security.lockout_response"
AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if TRUSTED_PROXY_COUNT else ("REMOTE_ADDR",)
)

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cdcrecon.api.tokens.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cdcrecon.api.errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": ["cdcrecon.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Counted in the default cache (Redis), shared by every gunicorn worker and host.
    "DEFAULT_THROTTLE_CLASSES": [
        "cdcrecon.api.throttles.AnonThrottle",
        "cdcrecon.api.throttles.UserThrottle",
        "cdcrecon.api.throttles.MutationThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": API_THROTTLE_ANON,
        "user": API_THROTTLE_USER,
        "mutations": API_THROTTLE_MUTATIONS,
    },
    "NUM_PROXIES": TRUSTED_PROXY_COUNT or None,
}
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_TTL": security.token_ttl(API_TOKEN_TTL_HOURS),
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "cdcrecon API",
    "DESCRIPTION": "Reconciliation of a Cassandra → PostgreSQL CDC pipeline.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name per choice set, so the schema validates with --fail-on-warn.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "reconciliation.choices.JobStatus",
        "JobPhaseEnum": "reconciliation.choices.JobPhase",
        "ResolutionStatusEnum": "reconciliation.choices.ResolutionStatus",
        "ClosedResolutionStatusEnum": ["MANUAL_RESOLVED", "AUTO_RESOLVED", "IGNORED"],
        "TriggerStatusEnum": ["RUNNING"],
        "SuccessStatusEnum": ["success"],
        "StoreStatusEnum": "gdpr.models.StoreStatus",
        "MismatchTypeEnum": "reconciliation.choices.MismatchType",
        "RepairPolicyEnum": "reconciliation.choices.RepairPolicy",
        "RepairSummaryStatusEnum": "reconciliation.choices.RepairRunStatus",
        "RepairRunStateEnum": "reconciliation.choices.RepairRunState",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # axes logs failures and lockouts as warnings; its INFO start-up banner is noise.
    "loggers": {"cassandra": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
