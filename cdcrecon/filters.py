"""A FilterSet that says no: the base of every list endpoint's filters.

django-filter ignores what it does not know: ``?tabel=users`` or ``?stauts=FAILED`` return
the whole list, and a client never learns its filter was dropped.  ``StrictFilterSet`` makes
the filterset invalid (so DRF's ``DjangoFilterBackend`` answers 400) when a request

* names a query parameter that is neither a filter nor a paging/format parameter
  (the message lists the accepted ones and suggests the closest),
* repeats a parameter (``?status=FAILED&status=RUNNING``: which one did it mean?),
* gives an enum value that is not a member (the message lists the valid values),
* gives a date range whose start is after its end (``date_ranges`` names the pairs).

Malformed values (a date that is not ISO 8601, a UUID that is not one) are the fields' own
errors.  The same filtersets serve the admin, which passes its own parameters, so the strict
checks only run when the filterset is bound to an API request (``strict=True``, the default
when a DRF ``Request`` is given).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, ClassVar

import django_filters
from django_filters.rest_framework import DjangoFilterBackend

# Accepted beside the filters: the pagination's and DRF's format override (?format=json).
PAGING_PARAMETERS: tuple[str, ...] = ("limit", "offset")
FORMAT_PARAMETER = "format"


class StrictFilterSet(django_filters.FilterSet):
    """A FilterSet that refuses unknown, repeated and out-of-range query parameters."""

    # Parameters accepted beside the declared filters (paging, ``format``).
    extra_parameters: ClassVar[tuple[str, ...]] = (*PAGING_PARAMETERS, FORMAT_PARAMETER)
    # (start, end) filter pairs that must not be reversed, e.g. ("from_date", "to_date").
    date_ranges: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, *args: Any, strict: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.strict = self.request is not None if strict is None else strict
        for name, filter_ in self.filters.items():
            if isinstance(filter_, django_filters.ChoiceFilter):
                values = [str(value) for value, _ in filter_.extra.get("choices", [])]
                # On the (per-instance, deep-copied) form field: it may already be built.
                filter_.field.error_messages["invalid_choice"] = (
                    f"%(value)r is not a valid {name}; valid values: {', '.join(values)}."
                )

    @classmethod
    def accepted_parameters(cls) -> list[str]:
        return [*cls.base_filters, *cls.extra_parameters]

    def _parameter_errors(self) -> dict[str, str]:
        if not self.strict or not isinstance(self.data, Mapping):
            return {}
        accepted = self.accepted_parameters()
        listed = ", ".join(accepted)
        errors: dict[str, str] = {}
        for name in self.data:
            if name not in accepted:
                close = difflib.get_close_matches(name, accepted, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                errors[name] = f"Unknown query parameter {name[:60]!r}.{hint} Accepted: {listed}."
            elif hasattr(self.data, "getlist") and len(self.data.getlist(name)) > 1:
                errors[name] = f"{name!r} is given more than once; give it once."
        return errors

    def is_valid(self) -> bool:
        # Computed once: the view, the pagination and the schema may all ask.
        if getattr(self, "_strict_valid", None) is None:
            self._strict_valid = super().is_valid() & self.check_parameters()
        return self._strict_valid

    def reject(self, name: str, message: str) -> None:
        """Record a problem with parameter ``name`` (need not be a form field).

        django-filter formats each message with ``message % params``: a ``%`` in a
        client's parameter name or value must not be read as a placeholder.
        """
        escaped = message.replace("%", "%%")
        self.form.errors.setdefault(name, self.form.error_class()).append(escaped)

    def check_parameters(self) -> bool:
        """Strict checks after the fields' own; subclasses add theirs (call super)."""
        valid = True
        for name, message in self._parameter_errors().items():
            self.reject(name, message)
            valid = False
        cleaned = getattr(self.form, "cleaned_data", {})
        for start, end in self.date_ranges:
            low, high = cleaned.get(start), cleaned.get(end)
            if low is not None and high is not None and low > high:
                self.reject(start, f"{start} must not be later than {end}.")
                valid = False
        return valid


class FilterSetOnViewBackend(DjangoFilterBackend):
    """DjangoFilterBackend that leaves the bound filterset on the view (``view.filterset``).

    The pagination can then ask it for a total it knows without a ``COUNT(*)``
    (``precounted_total()``, see ``reconciliation.filtersets.MismatchFilterSet``).
    """

    def get_filterset(self, request: Any, queryset: Any, view: Any) -> Any:
        filterset = super().get_filterset(request, queryset, view)
        view.filterset = filterset
        return filterset
