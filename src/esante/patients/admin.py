from django.contrib import admin

from .models import Patient


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ("matricule", "birth_name", "usage_name", "first_names", "birth_date", "dossier_state")
    list_filter = ("dossier_state", "sex", "taux")
    search_fields = ("=matricule", "birth_name_folded", "usage_name_folded")
    readonly_fields = ("public_id", "created_at", "updated_at")
    exclude = ("birth_name_folded", "usage_name_folded", "first_names_folded")
    raw_id_fields = ("referring_doctor",)
    show_full_result_count = False
