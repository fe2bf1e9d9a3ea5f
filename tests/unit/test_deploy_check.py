"""The README's production example passes ``manage.py check --deploy --fail-level WARNING``,
and the security settings follow the environment (each in a fresh process, as at start-up)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys

import pytest

from tests.support import REPO

README = REPO / "README.md"
# Inherited variables that would change the outcome; the example must stand on its own.
FOREIGN = re.compile(
    r"^(DEBUG|SECRET_KEY|ALLOWED_HOSTS|CSRF_.*|SESSION_.*|SECURE_.*|API_.*|AXES_.*|CACHE_.*|"
    r"TRUSTED_PROXY_COUNT|CDCRECON_.*|DJANGO_SETTINGS_MODULE)$"
)


def readme_production_env() -> dict[str, str]:
    """The ``NAME=value`` lines of the first code block in README's "Production" section."""
    section = README.read_text().split("\n## Production\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"((?:\n {4}\S.*)+)", section)
    assert block, "README's Production section has no example block"
    env = {}
    for line in block.group(1).strip("\n").splitlines():
        name, _, value = line.strip().partition("=")
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not an assignment: {line!r}"
        env[name] = value
    return env


def clean_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not FOREIGN.match(k)}
    env.update(DJANGO_SETTINGS_MODULE="cdcrecon.settings", PYTHONPATH=str(REPO), **variables)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_in(env: dict[str, str], *names: str) -> dict[str, object]:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {list(names)!r}}}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_readme_production_example_passes_check_deploy() -> None:
    example = readme_production_env()
    assert example["DEBUG"] == "false"
    assert example["SECRET_KEY"].startswith("<"), "the README must not publish a real key"
    example["SECRET_KEY"] = secrets.token_urlsafe(50)

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=clean_env(**example))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_production_start_without_the_hardening_variables_is_warned_about() -> None:
    env = clean_env(
        DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="cdcrecon.example.com"
    )

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode != 0
    warned = set(re.findall(r"security\.W\d+", result.stderr))
    # HSTS and the redirect are opt-in; the cookies are secure by default with DEBUG off.
    assert warned == {"security.W004", "security.W008"}


def test_cookies_are_secure_whenever_debug_is_off_unless_make_run_says_plain_http() -> None:
    names = ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")
    production = settings_in(clean_env(DEBUG="false"), *names)
    development = settings_in(clean_env(DEBUG="false", SECURE_COOKIES="false"), *names)

    assert production == dict.fromkeys(names, True)
    assert development == dict.fromkeys(names, False)
    # `make run` serves plain http on 127.0.0.1 with DEBUG off: scripts/run says so.
    assert re.search(
        r"^export SECURE_COOKIES=\$\{SECURE_COOKIES:-false\}$",
        (REPO / "scripts" / "run").read_text(),
        re.M,
    )


def test_the_proxy_header_hsts_and_rates_come_from_the_environment() -> None:
    values = settings_in(
        clean_env(
            SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto,https",
            SECURE_HSTS_SECONDS="300",
            API_TOKEN_TTL_HOURS="0",
            API_THROTTLE_MUTATIONS="10/minute",
            AXES_FAILURE_LIMIT="3",
            AXES_COOLOFF_MINUTES="0",
            CELERY_BROKER_URL="redis://broker.internal:6380/0",
        ),
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_HSTS_SECONDS",
        "REST_KNOX",
        "REST_FRAMEWORK",
        "AXES_FAILURE_LIMIT",
        "AXES_COOLOFF_TIME",
        "CACHES",
    )

    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_HSTS_SECONDS"] == 300
    assert values["REST_KNOX"]["TOKEN_TTL"] is None  # type: ignore[index]
    assert values["REST_FRAMEWORK"]["DEFAULT_THROTTLE_RATES"]["mutations"] == "10/minute"  # type: ignore[index]
    assert values["AXES_FAILURE_LIMIT"] == 3
    assert values["AXES_COOLOFF_TIME"] is None
    # the request counts live in the broker's Redis server, another database
    cache = values["CACHES"]["default"]  # type: ignore[index]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://broker.internal:6380/1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECURE_PROXY_SSL_HEADER", "https"),
        ("SECURE_SSL_REDIRECT", "ture"),  # a typo must not read as "false"
        ("SECURE_COOKIES", "nope"),
        ("SECURE_HSTS_SECONDS", "-1"),
        ("API_TOKEN_TTL_HOURS", "-5"),
        ("API_THROTTLE_USER", "lots"),
        ("AXES_FAILURE_LIMIT", "0"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(name, value) -> None:
    result = manage("check", env=clean_env(**{name: value}))

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


def test_the_compose_stack_passes_the_same_variables() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    app_env = compose["x-cdcrecon-env"]
    hardening = [
        name
        for name in readme_production_env()
        if name.startswith(("SECURE_", "API_", "AXES_", "TRUSTED_", "CSRF_", "CACHE_"))
    ]

    assert len(hardening) >= 12
    assert [name for name in hardening if name not in app_env] == []
    assert app_env["DEBUG"] == "false"
