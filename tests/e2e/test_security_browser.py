"""The admin login in a real browser over plain http, as `make run` serves it (DEBUG off,
SECURE_COOKIES=false from scripts/run and tests/settings.py), and django-axes' lockout."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-password"


@pytest.fixture
def accounts(transactional_db: None, django_user_model: Any) -> None:
    """Two superusers, made before the browser starts (requested before ``page``): an ORM
    connection opened while Playwright runs would outlive the test (see test_admin_browser)."""
    django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    django_user_model.objects.create_superuser("eve", "eve@example.com", PASSWORD)


def log_in(page: Any, base: str, username: str, password: str) -> Any:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("input[type=submit]")
    return page


def test_make_run_style_login_over_http_works_and_five_failures_lock_the_sixth(
    transactional_db, live_server, accounts, page
) -> None:
    # 127.0.0.1, not localhost: browsers only make an exception for "localhost" names
    base = live_server.url.replace("localhost", "127.0.0.1")
    assert base.startswith("http://")
    assert settings.DEBUG is False and settings.SESSION_COOKIE_SECURE is False

    log_in(page, base, "ops", PASSWORD)
    assert page.url.endswith("/admin/")
    assert "Site administration" in page.content()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert "sessionid" in cookies and cookies["sessionid"]["httpOnly"]

    page.context.clear_cookies()
    for _ in range(4):
        log_in(page, base, "eve", "wrong")
        assert "Please enter the correct username and password" in page.content()
    log_in(page, base, "eve", "wrong")
    log_in(page, base, "eve", PASSWORD)

    assert "locked" in page.content().lower()
    assert "sessionid" not in {c["name"] for c in page.context.cookies()}
