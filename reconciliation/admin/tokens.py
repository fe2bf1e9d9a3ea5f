"""API tokens (django-rest-knox) in the admin: listed by user, creation and expiry; deleting
one revokes it.  A new token is shown once, in the message after saving (only its digest is
stored), and expires after API_TOKEN_TTL_HOURS unless the form says otherwise."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils import timezone
from knox.admin import AuthTokenAdmin, AuthTokenCreateForm
from knox.models import AuthToken
from knox.settings import knox_settings


def default_expiry() -> Any:
    ttl = knox_settings.TOKEN_TTL
    return timezone.now() + ttl if ttl else None


class ApiTokenCreateForm(AuthTokenCreateForm):
    expiry = forms.DateTimeField(
        required=False,
        initial=default_expiry,
        help_text="Blank: the token never expires. Default: API_TOKEN_TTL_HOURS from now.",
    )


class ExpiredFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        now = timezone.now()
        if self.value() == "expired":
            return queryset.filter(expiry__lt=now)
        if self.value() == "active":
            return queryset.exclude(expiry__lt=now)
        return queryset


admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class ApiTokenAdmin(AuthTokenAdmin):
    add_form = ApiTokenCreateForm
    list_display = ("user", "token_start", "created", "expiry", "state")
    list_filter = (ExpiredFilter, "created")
    list_select_related = ("user",)
    search_fields = ("user__username", "token_key")
    ordering = ("-created",)

    @admin.display(description="starts with")
    def token_start(self, obj: AuthToken) -> str:
        return f"{obj.token_key[:8]}…"

    @admin.display(description="state")
    def state(self, obj: AuthToken) -> str:
        if obj.expiry is None:
            return "never expires"
        return "expired" if obj.expiry < timezone.now() else "active"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a token is issued or revoked, never edited

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super(AuthTokenAdmin, self).save_model(request, obj, form, change)
        if not change:
            self.message_user(
                request,
                f"API token for {obj.user}: {form.token} (shown only now: copy it).",
                messages.WARNING,
            )
