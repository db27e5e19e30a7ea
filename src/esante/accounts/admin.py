"""Django admin for agency operators (mounted at /operateurs/).

With ``ESANTE_ADMIN_REQUIRE_OTP`` the admin site requires an OTP-verified session (django-otp's
``OTPAdminSite``); its own login
page is replaced by the platform's login (password + one-time code, lockout), so operators are
held to the same rules as professionals. Every opening of a professional's record and every
change made through the actions is audited.
"""

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import AdminSite
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.http import urlencode
from django_otp.admin import OTPAdminSite

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.selectors import NEWEST_FIRST
from esante.core.http import client_address
from esante.core.services import operator_action_record

from .letters import activation_letter_pdf
from .models import ActivationLetter, Certificate, LoginThrottle, Professional, User
from .services import activation_letter_issue, login_throttle_lift, login_unlock, professional_set_state


class OperatorAdminSite(OTPAdminSite):
    """The admin, reachable only with an OTP-verified session opened by the platform's login."""

    site_header = "eSanté — opérateurs"

    def has_permission(self, request: HttpRequest) -> bool:
        if settings.ESANTE_ADMIN_REQUIRE_OTP:
            return super().has_permission(request)
        return AdminSite.has_permission(self, request)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        target = request.GET.get("next") or reverse("admin:index")
        return HttpResponseRedirect(f"{reverse('accounts:login')}?{urlencode({'next': target})}")


# django-otp's documented way to protect the default site in place.
admin.site.__class__ = OperatorAdminSite


@admin.register(User)
class OperatorUserAdmin(UserAdmin):
    """User accounts, as operators see them. No password is ever set here: a professional's comes
    from the activation (after the letter code and a one-time code), an operator sets their own
    with ``esante changepassword``; an account is created by activation or ``esante
    createsuperuser``, not here. Only a superuser changes rights (staff, superuser, groups,
    permissions); every change is traced."""

    rights_fields = ("is_staff", "is_superuser", "groups", "user_permissions")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        raise PermissionDenied

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        readonly: tuple[str, ...] = ("password", "last_login", "date_joined")
        if not request.user.is_superuser:
            readonly += self.rights_fields
        return readonly

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        operator_action_record(
            action=AuditAction.ACCOUNT_ADMIN_CHANGE,
            operator=request.user,
            object_type="user",
            object_id=obj.pk,
            client_address=client_address(request),
            details={"fields": sorted(form.changed_data)},
        )


class CertificateInline(admin.TabularInline):
    model = Certificate
    extra = 0
    can_delete = False
    fields = ("subject", "issuer", "serial", "not_after", "bound_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ActivationLetterInline(admin.TabularInline):
    model = ActivationLetter
    extra = 0
    can_delete = False
    fields = ("issued_at", "expires_at", "used_at", "revoked_at", "failed_attempts", "issued_by")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _operator(request: HttpRequest) -> str:
    return f"operator:{request.user.get_username()}"


@admin.register(Professional)
class ProfessionalAdmin(admin.ModelAdmin):
    list_display = ("matricule", "last_name", "first_name", "profession", "state")
    list_filter = ("profession", "state")
    search_fields = ("=matricule", "last_name")
    readonly_fields = ("created_at", "terms_version", "terms_accepted_at", "state", "login_history")
    inlines = (CertificateInline, ActivationLetterInline)
    actions = ("suspend", "reactivate", "unlock", "issue_letter")

    @admin.display(description="historique des connexions")
    def login_history(self, obj: Professional) -> str:
        events = AuditEvent.objects.filter(actor=obj.user, action__startswith="accounts.login").order_by(
            NEWEST_FIRST
        )[:20]
        return format_html_join(
            "",
            "<div>{} — {} — {} — {}</div>",
            (
                (e.created_at.strftime("%d/%m/%Y %H:%M"), e.action, e.outcome, e.client_address or "")
                for e in events
            ),
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "GET":
            operator_action_record(
                action=AuditAction.ACCOUNT_ADMIN_READ,
                operator=request.user,
                object_type="professional",
                object_id=object_id,
                client_address=client_address(request),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Professional, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        operator_action_record(
            action=AuditAction.ACCOUNT_ADMIN_CHANGE,
            operator=request.user,
            object_type="professional",
            object_id=obj.pk,
            client_address=client_address(request),
            details={"fields": sorted(form.changed_data)},
        )

    def _set_state(self, request: HttpRequest, queryset: QuerySet[Professional], state: str) -> None:
        for professional in queryset:
            try:
                professional_set_state(professional=professional, state=state, actor_label=_operator(request))
            except ValidationError as exc:
                self.message_user(request, f"{professional} : {' '.join(exc.messages)}", messages.ERROR)

    @admin.action(description="Suspendre les comptes sélectionnés")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Professional]) -> None:
        self._set_state(request, queryset, Professional.State.SUSPENDED)

    @admin.action(description="Réactiver les comptes sélectionnés")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Professional]) -> None:
        self._set_state(request, queryset, Professional.State.ACTIVE)

    @admin.action(description="Lever le blocage de connexion")
    def unlock(self, request: HttpRequest, queryset: QuerySet[Professional]) -> None:
        for professional in queryset:
            login_unlock(professional=professional, actor_label=_operator(request))
        self.message_user(request, "Blocage levé.")

    @admin.action(description="Émettre un nouveau courrier d'activation (PDF)")
    def issue_letter(self, request: HttpRequest, queryset: QuerySet[Professional]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Sélectionnez un seul professionnel.", messages.ERROR)
            return None
        professional = queryset.get()
        try:
            letter, code = activation_letter_issue(professional=professional, actor_label=_operator(request))
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return None
        response = HttpResponse(
            activation_letter_pdf(letter=letter, code=code), content_type="application/pdf"
        )
        response["Content-Disposition"] = f'attachment; filename="activation-{professional.matricule}.pdf"'
        return response


@admin.register(LoginThrottle)
class LoginThrottleAdmin(admin.ModelAdmin):
    """The failure counters, read-only; « Lever le blocage » lifts a client network's limit (or a
    pair's delay) before it ends, audited. Accounts are unlocked from the professional's page."""

    list_display = ("scope", "key", "failures", "locked_until", "succeeded_at", "updated_at")
    list_filter = ("scope",)
    search_fields = ("key",)
    readonly_fields = (
        "scope",
        "key",
        "failures",
        "lock_count",
        "locked_until",
        "window_started_at",
        "notified_at",
        "succeeded_at",
        "updated_at",
    )
    actions = ("lift",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Lever le blocage (adresse ou délai)")
    def lift(self, request: HttpRequest, queryset: QuerySet[LoginThrottle]) -> None:
        lifted = 0
        for throttle in queryset:
            try:
                login_throttle_lift(throttle=throttle, actor_label=_operator(request))
            except ValidationError as exc:
                self.message_user(request, f"{throttle} : {' '.join(exc.messages)}", messages.ERROR)
            else:
                lifted += 1
        if lifted:
            self.message_user(request, f"Blocage levé ({lifted}).")
