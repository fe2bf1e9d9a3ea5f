"""Working the mismatch queue in the admin: the actions (resolve, ignore, reopen, re-check,
repair from source), their intermediate forms, and the way back to the operator's filtered
list with the next pending mismatch offered.  ``MismatchAdmin`` (``admin.mismatches``) mixes
them in.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import FieldError, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.utils.html import format_html

from reconciliation.admin.common import (
    CHANGELIST_FILTERS,
    NotesForm,
    already_closed_message,
    change_url_in_list,
    changelist_filters,
    filtered_changelist_url,
)
from reconciliation.admin.views import summarise
from reconciliation.choices import ResolutionStatus
from reconciliation.ledger import reads as ledger
from reconciliation.models import CLOSED_STATUSES, AlreadyResolved, Mismatch
from reconciliation.repair.manual import RepairFailed, repair_mismatch


class QueueActions(admin.ModelAdmin):
    """The mismatch admin's actions and the way back to the list (module docstring)."""

    @staticmethod
    def list_filters_of(request: HttpRequest) -> str:
        """The filters of the operator's list: carried in ``_changelist_filters`` by the
        change page's forms, or the changelist's own query string for its action bar."""
        if CHANGELIST_FILTERS in request.POST or CHANGELIST_FILTERS in request.GET:
            return changelist_filters(request)
        query = request.GET.copy()
        for name in ("p", "e"):
            query.pop(name, None)
        return query.urlencode()

    def next_pending(
        self, request: HttpRequest, filters: str, exclude: Iterable[Any] = ()
    ) -> Mismatch | None:
        """The first PENDING mismatch of the operator's filtered list, in its order."""
        listing = copy.copy(request)
        listing.GET = QueryDict(filters)
        listing.POST = QueryDict()
        listing.method = "GET"
        try:
            queryset = self.get_changelist_instance(listing).get_queryset(listing)
        except (IncorrectLookupParameters, FieldError, ValidationError, ValueError):
            queryset = self.get_queryset(request).order_by(*self.get_ordering(request))
        return (
            queryset.filter(resolution_status=ResolutionStatus.PENDING)
            .exclude(pk__in=list(exclude))
            .select_related(None)
            .only("mismatch_id", "primary_key_value", "table_name")
            .first()
        )

    def back_to_list(
        self, request: HttpRequest, handled: Iterable[Any]
    ) -> HttpResponseRedirect | None:
        """After an action: offer the next pending mismatch, return to the operator's list."""
        filters = self.list_filters_of(request)
        following = self.next_pending(request, filters, exclude=handled)
        if following is not None:
            self.message_user(
                request,
                format_html(
                    'Next pending: <a href="{}" class="cdc-next-pending">{} {}</a>',
                    change_url_in_list(self, following.pk, filters),
                    following.table_name,
                    following.primary_key_value,
                ),
                messages.INFO,
            )
        if CHANGELIST_FILTERS in request.POST:
            return HttpResponseRedirect(filtered_changelist_url(self, filters))
        return None  # Django redirects to the list the action was posted from, filters kept

    # --- actions with an intermediate form ------------------------------------------

    def _notes_form(
        self,
        request: HttpRequest,
        queryset: QuerySet[Mismatch],
        *,
        title: str,
        button: str,
        apply: Callable[[Mismatch, str], None],
    ) -> TemplateResponse | HttpResponseRedirect | None:
        if "apply" in request.POST:
            form = NotesForm(request.POST)
            if form.is_valid():
                handled = self._apply_each(request, queryset, form.cleaned_data["notes"], apply)
                return self.back_to_list(request, handled)
            self.message_user(request, "Nothing was changed: notes are required.", messages.ERROR)
        else:
            form = NotesForm()
        return self._intermediate(
            request,
            queryset,
            "admin/reconciliation/mismatch/notes_form.html",
            title=title,
            button=button,
            form=form,
        )

    def _intermediate(
        self, request: HttpRequest, queryset: QuerySet[Mismatch], template: str, **extra: Any
    ) -> TemplateResponse:
        shown = list(queryset.select_related("resolved_by")[:25])
        total = queryset.count()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "action": request.POST.get("action", ""),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "mismatches": shown,
            "total": total,
            "more": total - len(shown),
            "changelist_filters": self.list_filters_of(request)
            if CHANGELIST_FILTERS in request.POST
            else None,
            **extra,
        }
        return TemplateResponse(request, template, context)

    def _apply_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Mismatch],
        notes: str,
        apply: Callable[[Mismatch, str], None],
    ) -> list[Any]:
        """Apply to each mismatch; returns the ids of all it was tried on."""
        done: list[str] = []
        refused: list[str] = []
        handled: list[Any] = []
        for mismatch in queryset.select_related(None).iterator():
            handled.append(mismatch.pk)
            try:
                apply(mismatch, notes)
            except AlreadyResolved as exc:
                refused.append(already_closed_message(exc.mismatch))
            except ValueError as exc:
                refused.append(f"{mismatch.table_name} {mismatch.primary_key_value}: {exc}")
            else:
                done.append(mismatch.primary_key_value)
        if done:
            self.message_user(
                request, f"{len(done)} mismatch(es) updated: {summarise(done)}.", messages.SUCCESS
            )
        for message in refused[:10]:
            self.message_user(request, message, messages.WARNING)
        if len(refused) > 10:
            self.message_user(
                request, f"… and {len(refused) - 10} more were not changed.", messages.WARNING
            )
        return handled

    @admin.action(description="Mark selected mismatches resolved…", permissions=["change"])
    def mark_resolved(
        self, request: HttpRequest, queryset: QuerySet[Mismatch]
    ) -> TemplateResponse | HttpResponseRedirect | None:
        return self._notes_form(
            request,
            queryset,
            title="Mark mismatches resolved",
            button="Mark resolved",
            apply=lambda m, notes: m.resolve(request.user, ResolutionStatus.MANUAL_RESOLVED, notes),
        )

    @admin.action(description="Ignore selected mismatches…", permissions=["change"])
    def mark_ignored(
        self, request: HttpRequest, queryset: QuerySet[Mismatch]
    ) -> TemplateResponse | HttpResponseRedirect | None:
        return self._notes_form(
            request,
            queryset,
            title="Ignore mismatches",
            button="Ignore",
            apply=lambda m, notes: m.resolve(request.user, ResolutionStatus.IGNORED, notes),
        )

    @admin.action(description="Reopen selected resolved mismatches…", permissions=["change"])
    def reopen(
        self, request: HttpRequest, queryset: QuerySet[Mismatch]
    ) -> TemplateResponse | HttpResponseRedirect | None:
        return self._notes_form(
            request,
            queryset,
            title="Reopen mismatches",
            button="Reopen",
            apply=lambda m, notes: m.reopen(request.user, notes),
        )

    @admin.action(description="Repair selected from source (Cassandra)…", permissions=["repair"])
    def repair_from_source(
        self, request: HttpRequest, queryset: QuerySet[Mismatch]
    ) -> TemplateResponse | HttpResponseRedirect | None:
        if "apply" not in request.POST:
            return self._intermediate(
                request,
                queryset,
                "admin/reconciliation/mismatch/repair_confirm.html",
                title="Repair mismatches from Cassandra",
                closed_statuses=list(CLOSED_STATUSES),
            )
        repaired = 0
        handled: list[Any] = []
        for mismatch in queryset.select_related(None).iterator():
            handled.append(mismatch.pk)
            label = f"{mismatch.table_name} {mismatch.primary_key_value}"
            try:
                result = repair_mismatch(mismatch, request.user)
            except RepairFailed as exc:
                level = messages.WARNING if exc.code == "already_resolved" else messages.ERROR
                suffix = "" if exc.code == "already_resolved" else " It stays PENDING."
                self.message_user(request, f"Repair of {label} failed: {exc.detail}{suffix}", level)
            else:
                repaired += 1
                self.message_user(request, f"Repaired {label}. {result.note}", messages.SUCCESS)
        if repaired > 1:
            self.message_user(request, f"{repaired} mismatches repaired.", messages.SUCCESS)
        return self.back_to_list(request, handled)

    @admin.action(
        description="Re-check selected now (read both stores again)", permissions=["change"]
    )
    def recheck_now(
        self, request: HttpRequest, queryset: QuerySet[Mismatch]
    ) -> HttpResponseRedirect | None:
        """Mismatch.recheck: re-read the key from both stores now, close
        the difference (AUTO_RESOLVED) when the rows agree, refresh it otherwise."""
        handled: list[Any] = []
        outcomes: dict[str, list[str]] = {}
        for mismatch in queryset.select_related(None).iterator():
            handled.append(mismatch.pk)
            try:
                outcome = ledger.recheck(mismatch, request.user)
            except Exception as exc:  # a store down: report it, keep going with the others
                self.message_user(
                    request,
                    f"Re-check of {mismatch.table_name} {mismatch.primary_key_value} failed: {exc}",
                    messages.ERROR,
                )
            else:
                outcomes.setdefault(outcome, []).append(mismatch.primary_key_value)
        for outcome, keys in outcomes.items():
            self.message_user(
                request,
                f"Re-checked {len(keys)}: {outcome.replace('_', ' ')}: {summarise(keys)}.",
                messages.SUCCESS,
            )
        return self.back_to_list(request, handled)
