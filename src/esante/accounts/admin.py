from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import Professional, User

admin.site.register(User, UserAdmin)


@admin.register(Professional)
class ProfessionalAdmin(admin.ModelAdmin):
    list_display = ("matricule", "last_name", "first_name", "profession", "state")
    list_filter = ("profession", "state")
    search_fields = ("=matricule", "last_name")
    readonly_fields = ("created_at", "terms_version", "terms_accepted_at")
