"""Operators' side: grants (read, revoke), patient blocks (set, lift), patients' access journals (CSV).

Opening a grant, a record opening or a journal is traced in the patient's trail."""

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.core.admin import ReadTracedAdmin
from esante.core.services import operator_action_record

from . import services
from .models import AccessGrant, PatientBlock, PatientJournal, RecordOpening

JOURNAL_HEADER = ["n°", "date", "acteur", "action", "résultat", "motif", "mode", "adresse du client"]


@admin.register(AccessGrant)
class AccessGrantAdmin(ReadTracedAdmin):
    list_display = ("granted_at", "professional", "patient", "mode", "motif", "expires_at", "revoked_at")
    list_filter = ("mode",)
    search_fields = ("=patient__matricule", "=professional__matricule")
    raw_id_fields = ("professional", "patient")
    list_select_related = ("professional", "patient")
    show_full_result_count = False
    actions = ["revoke"]
    readonly_fields = [f.name for f in AccessGrant._meta.fields]
    read_action = AuditAction.ACCESS_ADMIN_READ
    list_action = AuditAction.ACCESS_ADMIN_LIST

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Révoquer les accès sélectionnés")
    def revoke(self, request: HttpRequest, queryset: QuerySet[AccessGrant]) -> None:
        count = 0
        for grant in queryset.filter(revoked_at__isnull=True):
            services.access_grant_revoke(grant=grant, actor=request.user, reason="Révoqué par un opérateur")
            count += 1
        self.message_user(request, f"{count} accès révoqué(s).", messages.SUCCESS)


@admin.register(PatientBlock)
class PatientBlockAdmin(admin.ModelAdmin):
    list_display = ("created_at", "patient", "professional", "reason", "lifted_at")
    search_fields = ("=patient__matricule", "=professional__matricule")
    raw_id_fields = ("patient", "professional")
    list_select_related = ("professional", "patient")
    fields = ("patient", "professional", "reason")
    actions = ["lift"]
    show_full_result_count = False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return obj is None  # a block is set (add) or lifted (action), never edited

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: PatientBlock, form: Any, change: bool) -> None:
        created = services.patient_block_create(
            patient=obj.patient, professional=obj.professional, actor=request.user, reason=obj.reason
        )
        obj.pk = created.pk

    @admin.action(description="Lever les refus sélectionnés")
    def lift(self, request: HttpRequest, queryset: QuerySet[PatientBlock]) -> None:
        for block in queryset.filter(lifted_at__isnull=True):
            services.patient_block_lift(block=block, actor=request.user)
        self.message_user(request, "Refus levé(s).", messages.SUCCESS)


@admin.register(RecordOpening)
class RecordOpeningAdmin(ReadTracedAdmin):
    list_display = ("opened_at", "professional", "patient", "grant")
    search_fields = ("=patient__matricule", "=professional__matricule")
    raw_id_fields = ("professional", "patient", "grant")
    list_select_related = ("professional", "patient")
    show_full_result_count = False
    read_action = AuditAction.ACCESS_ADMIN_READ
    list_action = AuditAction.ACCESS_ADMIN_LIST

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


FORMULA_STARTS = ("=", "+", "-", "@")


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula.

    Spreadsheets skip leading blanks before reading a formula, so the first character that is
    not white space decides; a leading tab or carriage return is escaped too (OWASP CSV injection).
    """
    text = "" if value is None else str(value)
    if text[:1] in ("\t", "\r") or text.lstrip()[:1] in FORMULA_STARTS:
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


def journal_rows(patients: QuerySet[Any]) -> Iterator[list[str]]:
    """The access journal of the given patients: who, when, what, outcome, why — oldest first."""
    yield ["matricule patient", *JOURNAL_HEADER]
    for patient in patients.order_by("pk"):
        events = AuditEvent.objects.filter(patient=patient).order_by("sequence")
        for event in events.iterator(chunk_size=2000):
            yield [
                _cell(patient.matricule),
                _cell(event.sequence),
                _cell(timezone.localtime(event.created_at).strftime("%d/%m/%Y %H:%M:%S")),
                _cell(event.actor_label),
                _cell(event.action),
                _cell(event.get_outcome_display()),
                _cell(event.motif),
                _cell((event.details or {}).get("mode", "")),
                _cell(event.client_address),
            ]


@admin.register(PatientJournal)
class PatientJournalAdmin(ReadTracedAdmin):
    """Read a patient's access journal and export it as CSV (the export is itself traced)."""

    list_display = ("matricule", "birth_name", "first_names", "birth_date")
    search_fields = ("=matricule",)
    actions = ["export_journal"]
    show_full_result_count = False
    read_action = AuditAction.PATIENT_ADMIN_READ
    list_action = AuditAction.PATIENT_ADMIN_LIST

    def traced_patient(self, obj: PatientJournal) -> PatientJournal:
        return obj

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Exporter le journal d'accès (CSV)")
    def export_journal(
        self, request: HttpRequest, queryset: QuerySet[PatientJournal]
    ) -> StreamingHttpResponse:
        patients = list(queryset.order_by("pk")[:100])
        for patient in patients:
            operator_action_record(
                action=AuditAction.JOURNAL_EXPORT,
                operator=request.user,
                patient=patient,
                details={"format": "csv"},
            )
        writer = csv.writer(_Echo(), delimiter=";")
        selected = queryset.model.objects.filter(pk__in=[p.pk for p in patients])
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in journal_rows(selected)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="journal-acces.csv"'
        return response
