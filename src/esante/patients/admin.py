"""Operators' side of the patient index: every opening of a patient's page and every change is
traced; a patient is never deleted (clinical data are kept, DESIGN "Nothing is lost")."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from esante.audit.catalogue import AuditAction
from esante.core.admin import ReadTracedAdmin
from esante.core.http import client_address

from . import services
from .models import Patient


@admin.register(Patient)
class PatientAdmin(ReadTracedAdmin):
    list_display = ("matricule", "birth_name", "usage_name", "first_names", "birth_date", "dossier_state")
    list_filter = ("dossier_state", "sex", "taux")
    search_fields = ("=matricule", "birth_name_folded", "usage_name_folded")
    readonly_fields = ("public_id", "created_at", "updated_at")
    exclude = ("birth_name_folded", "usage_name_folded", "first_names_folded")
    raw_id_fields = ("referring_doctor",)
    show_full_result_count = False
    read_action = AuditAction.PATIENT_ADMIN_READ
    list_action = AuditAction.PATIENT_ADMIN_LIST

    def traced_patient(self, obj: Patient) -> Patient:
        return obj

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # also removes the "delete selected" action

    def save_model(self, request: HttpRequest, obj: Patient, form: Any, change: bool) -> None:
        # Runs inside the admin's transaction: the save and its audit event commit together.
        services.patient_save_by_operator(
            patient=obj,
            fields=form.changed_data if change else list(form.fields),
            actor=request.user,
            client_address=client_address(request),
        )
