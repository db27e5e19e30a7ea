"""Read-only admin views: dispensations and certified copies are changed through services only."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import CertifiedCopy, Dispensation, DispensationLine


class _ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DispensationLineInline(admin.TabularInline):  # type: ignore[type-arg]
    model = DispensationLine
    extra = 0
    can_delete = False
    readonly_fields = ["prescription_line", "quantity_prescribed", "quantity_delivered", "quantity_remaining"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Dispensation)
class DispensationAdmin(_ReadOnly):
    list_display = ["dispensed_at", "kind", "pharmacy", "pharmacist_name", "withdrawn_at"]
    list_filter = ["kind"]
    inlines = [DispensationLineInline]


@admin.register(CertifiedCopy)
class CertifiedCopyAdmin(_ReadOnly):
    list_display = ["created_at", "dispensation", "pdf_sha256", "superseded_at"]
    exclude = ["code_digest"]
