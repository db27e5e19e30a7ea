"""The patients' portal (« Espace patient »): activation, login, « Mon dossier », « Mon journal
d'accès », « Mes choix »."""

import datetime
import uuid
from typing import Any

from django.conf import settings
from django.contrib import auth, messages
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from esante.accounts import login as login_steps
from esante.accounts import presentation
from esante.accounts.forms import LoginForm, OneTimeCodeForm, SecurityForm
from esante.accounts.models import CertificatePresentation, Professional, User
from esante.accounts.otp import login_device_channel
from esante.audit.catalogue import AuditAction
from esante.core.http import client_address
from esante.documents import cda
from esante.documents.models import MediaType

from . import accounts as activation_steps
from . import exports, selectors, services
from .certificates import patient_certificate_bind, patient_login_certificate
from .forms import JournalFilterForm, NotificationsForm, PatientCodeForm, ProfessionalSearchForm
from .http import ACTING_FOR_KEY, active_patient_account, is_active_patient, not_found_page, patient_required
from .models import USERNAME_PREFIX, PatientAccount, PatientActivation, PatientCertificate

ACTIVATION_KEY = "espace_activation"
PENDING_LOGIN_KEY = "espace_login_pending"
Step = PatientActivation.Step


def home(request: HttpRequest) -> HttpResponse:
    """« Je suis un patient »: activate the account, or log in."""
    return render(request, "espace/home.html")


# --- activation -------------------------------------------------------------------------------


def _activation(request: HttpRequest) -> PatientActivation | None:
    return activation_steps.activation_for_key(request.session.get(ACTIVATION_KEY))


@never_cache
@require_http_methods(["GET", "POST"])
def activation(request: HttpRequest) -> HttpResponse:
    """Step 1: the letter's matricule and code, and the terms."""
    current = _activation(request)
    if current is not None and current.step != Step.CODE:
        return redirect(
            "espace:activation_security" if current.step == Step.SECURITY else "espace:activation_code"
        )
    form = PatientCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if current is None:
            current = activation_steps.activation_start(terms_version=settings.ESANTE_TERMS_VERSION)
            request.session[ACTIVATION_KEY] = current.key
        outcome = activation_steps.activation_code(
            activation=current,
            matricule=form.cleaned_data["matricule"],
            code=form.cleaned_data["code"],
            client_address=client_address(request),
        )
        if outcome.ok:
            return redirect("espace:activation_security")
        form.add_error(None, outcome.message)
    return render(request, "espace/activation_code.html", {"form": form, "step": 1})


@never_cache
@require_http_methods(["GET", "POST"])
def activation_security(request: HttpRequest) -> HttpResponse:
    """Step 2: the password and where the one-time codes go."""
    current = _activation(request)
    if current is None or current.step == Step.CODE:
        return redirect("espace:activation")
    if current.step == Step.CONFIRMATION:
        return redirect("espace:activation_code")
    form = SecurityForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            outcome = activation_steps.activation_security(
                activation=current,
                password=form.cleaned_data["password1"],
                channel=form.cleaned_data["channel"],
                address=form.cleaned_data["address"],
                client_address=client_address(request),
            )
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(name if name in form.fields else None, error)
        else:
            if outcome.ok:
                return redirect("espace:activation_code")
            form.add_error(None, outcome.message)
    return render(request, "espace/activation_security.html", {"form": form, "step": 2})


@never_cache
@require_http_methods(["GET", "POST"])
def activation_code(request: HttpRequest) -> HttpResponse:
    """Step 3: the one-time code received; the account is then active."""
    current = _activation(request)
    if current is None or current.step != Step.CONFIRMATION:
        return redirect("espace:activation")
    if request.method == "POST" and "back" in request.POST:
        activation_steps.activation_back(activation=current)
        return redirect("espace:activation_security")
    form = OneTimeCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = activation_steps.activation_confirm(
            activation=current, code=form.cleaned_data["code"].strip(), client_address=client_address(request)
        )
        if outcome.ok:
            request.session.pop(ACTIVATION_KEY, None)
            messages.success(request, gettext("Votre espace patient est activé. Connectez-vous."))
            return redirect("espace:login")
        form.add_error("code", outcome.message)
        if _activation(request) is None:  # the activation ended (letter no longer usable)
            request.session.pop(ACTIVATION_KEY, None)
    return render(
        request,
        "espace/activation_confirm.html",
        {"form": form, "step": 3, "by_sms": current.channel == "sms"},
    )


# --- login ------------------------------------------------------------------------------------


def _pending_user(request: HttpRequest) -> User | None:
    pending = request.session.get(PENDING_LOGIN_KEY)
    if not pending:
        return None
    started = datetime.datetime.fromisoformat(pending["at"])
    if (timezone.now() - started).total_seconds() > settings.ESANTE_OTP_VALID_SECONDS * 2:
        request.session.pop(PENDING_LOGIN_KEY, None)
        return None
    user = User.objects.filter(pk=pending["user"], username__startswith=USERNAME_PREFIX).first()
    return user


@never_cache
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """Matricule and password, then the one-time code (the professionals' rules)."""
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = login_steps.login_password(
            matricule=form.cleaned_data["matricule"],
            password=form.cleaned_data["password"],
            client_address=client_address(request),
            username_prefix=USERNAME_PREFIX,
            account_active=is_active_patient,
        )
        if outcome.ok:
            request.session.cycle_key()
            request.session[PENDING_LOGIN_KEY] = {"user": outcome.user.pk, "at": timezone.now().isoformat()}
            return redirect("espace:login_code")
        form.add_error(None, outcome.message)
    return render(request, "espace/login.html", {"form": form})


@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    user = _pending_user(request)
    if user is None:
        messages.error(request, gettext("Votre session de connexion a expiré : recommencez."))
        return redirect("espace:login")
    address = client_address(request)
    if request.method == "POST" and "resend" in request.POST:
        outcome = login_steps.login_code_resend(user=user, client_address=address)
        if outcome.ok:
            messages.success(request, gettext("Un nouveau code vous a été envoyé."))
        else:
            messages.error(request, outcome.message)
        return redirect("espace:login_code")
    form = OneTimeCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = login_steps.login_code(
            user=user,
            code=form.cleaned_data["code"].strip(),
            client_address=address,
            account_active=is_active_patient,
        )
        if outcome.ok:
            request.session.pop(PENDING_LOGIN_KEY, None)
            auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            otp_login(request, outcome.device)
            return redirect("espace:record")
        if outcome.locked_until is not None:
            request.session.pop(PENDING_LOGIN_KEY, None)
            messages.error(request, outcome.message)
            return redirect("espace:login")
        form.add_error("code", outcome.message)
    by_sms = login_device_channel(user) == "sms"
    # The professionals' code page: the same factor, the same words.
    return render(request, "accounts/login_code.html", {"form": form, "by_sms": by_sms})


# --- certificate (LuxTrust product or eID card), on the professionals' certificate origin -----

CERTIFICATE_KEY = "espace_certificate_presentation"


def _certificate_start(request: HttpRequest, intent: str, back: str) -> HttpResponse:
    try:
        started, origin_url = presentation.certificate_presentation_start(
            purpose=CertificatePresentation.Purpose.LOGIN,
            wizard=None,
            return_url=request.build_absolute_uri(reverse("espace:certificate_return")),
        )
    except presentation.OriginNotConfigured:
        messages.error(
            request, gettext("La connexion par certificat n'est pas disponible sur cette plateforme.")
        )
        return redirect(back)
    request.session[CERTIFICATE_KEY] = {"presentation": started.pk, "intent": intent}
    return HttpResponseRedirect(origin_url)


@never_cache
@require_POST
def login_certificate(request: HttpRequest) -> HttpResponse:
    """« Connexion » with a bound LuxTrust product or eID card."""
    return _certificate_start(request, "login", "espace:login")


@never_cache
@require_POST
@patient_required
def certificate_bind(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    """« Associer mon certificat »: from a password and code session, for the holder's own account."""
    if account.acting_for is not None:
        messages.error(request, gettext("Un certificat s'associe à votre propre espace."))
        return redirect("espace:choices")
    return _certificate_start(request, "bind", "espace:choices")


@never_cache
@require_GET
def certificate_return(request: HttpRequest) -> HttpResponse:
    started = request.session.pop(CERTIFICATE_KEY, None) or {}
    address = client_address(request)
    consumed = presentation.certificate_token_consume(
        token=request.GET.get("jeton", ""),
        presentation_id=started.get("presentation"),
        client_address=address,
    )
    if started.get("intent") == "bind":
        account = active_patient_account(request.user)
        if account is None:
            return redirect("espace:login")
        message = (
            consumed.message
            if not consumed.ok
            else patient_certificate_bind(
                account=account, certificate_pem=consumed.certificate_pem, client_address=address
            )
        )
        if message:
            messages.error(request, message)
        else:
            messages.success(
                request, gettext("Votre certificat est associé : il vous connecte désormais seul.")
            )
        return redirect("espace:choices")
    if not consumed.ok:
        messages.error(request, consumed.message)
        return redirect("espace:login")
    outcome = patient_login_certificate(certificate_pem=consumed.certificate_pem, client_address=address)
    if not outcome.ok:
        messages.error(request, outcome.message)
        return redirect("espace:login")
    request.session.pop(PENDING_LOGIN_KEY, None)
    auth.login(request, outcome.user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect("espace:record")


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        login_steps.logout_record(user=request.user, client_address=client_address(request))
    auth.logout(request)
    messages.success(request, gettext("Vous êtes déconnecté."))
    return redirect("espace:login")


# --- « Mon dossier » --------------------------------------------------------------------------


@never_cache
@require_GET
@patient_required
def record(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    documents = list(selectors.own_documents(account.patient))
    prescriptions = selectors.own_prescriptions(account.patient)
    services.patient_trace(
        account,
        AuditAction.ESPACE_RECORD_VIEW,
        client_address=client_address(request),
        documents=len(documents),
    )
    return render(
        request,
        "espace/record.html",
        {"tab": "record", "account": account, "documents": documents, "prescriptions": prescriptions},
    )


def _own_document(request: HttpRequest, account: PatientAccount, document_id: uuid.UUID) -> Any:
    document = selectors.own_document(account.patient, document_id)
    if document is None:
        services.patient_not_found(
            account, what="document", object_id=str(document_id), client_address=client_address(request)
        )
    return document


@never_cache
@require_GET
@patient_required
def document(request: HttpRequest, account: PatientAccount, document_id: uuid.UUID) -> HttpResponse:
    found = _own_document(request, account, document_id)
    if found is None:
        return not_found_page(request)
    services.patient_trace(
        account,
        AuditAction.ESPACE_DOCUMENT_READ,
        client_address=client_address(request),
        object_type="document",
        object_id=str(found.public_id),
    )
    context: dict[str, Any] = {"tab": "record", "account": account, "document": found}
    if found.media_type == MediaType.CDA:
        with default_storage.open(found.content.name, "rb") as fh:
            context["cda_html"] = cda.render_html(cda.parse(fh.read()))
    elif found.media_type == MediaType.TEXT:
        with default_storage.open(found.content.name, "rb") as fh:
            context["text"] = fh.read().decode("utf-8")
    return render(request, "espace/document.html", context)


@never_cache
@require_GET
@xframe_options_sameorigin
@patient_required
def document_content(request: HttpRequest, account: PatientAccount, document_id: uuid.UUID) -> HttpResponse:
    """The bytes, under the professionals' viewer's policy (nothing in a document runs)."""
    from esante.documents.views import CONTENT_CSP, PDF_CSP

    found = _own_document(request, account, document_id)
    if found is None:
        return not_found_page(request)
    services.patient_trace(
        account,
        AuditAction.ESPACE_DOCUMENT_READ,
        client_address=client_address(request),
        object_type="document",
        object_id=str(found.public_id),
        content=True,
    )
    with default_storage.open(found.content.name, "rb") as fh:
        data = fh.read()
    media = MediaType(found.media_type)
    content_type = {
        MediaType.PDF: "application/pdf",
        MediaType.CDA: "application/xml; charset=utf-8",
        MediaType.TEXT: "text/plain; charset=utf-8",
    }[media]
    response = HttpResponse(data, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = PDF_CSP if media == MediaType.PDF else CONTENT_CSP
    extension = {MediaType.PDF: "pdf", MediaType.CDA: "xml", MediaType.TEXT: "txt"}[media]
    disposition = "inline" if media == MediaType.PDF else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="document-{found.public_id}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
@patient_required
def document_visibility(
    request: HttpRequest, account: PatientAccount, document_id: uuid.UUID, hide: bool
) -> HttpResponse:
    """« Masquer » / « Afficher »: a confirmation page saying what it does, then the choice."""
    found = _own_document(request, account, document_id)
    if found is None:
        return not_found_page(request)
    if request.method == "POST":
        services.document_visibility_set(
            account=account, document=found, hidden=hide, client_address=client_address(request)
        )
        messages.success(
            request,
            gettext("Le document est masqué aux professionnels.")
            if hide
            else gettext(
                "Le document est de nouveau visible des professionnels qui ont accès à votre dossier."
            ),
        )
        return redirect("espace:choices")
    return render(
        request, "espace/confirm_document.html", {"tab": "choices", "document": found, "hide": hide}
    )


# --- « Mon journal d'accès » ------------------------------------------------------------------


def _journal_filters(
    request: HttpRequest, account: PatientAccount
) -> tuple[JournalFilterForm, Any, list[Professional]]:
    professionals = selectors.journal_professionals(account.patient)
    form = JournalFilterForm(request.GET or None, professionals=professionals)
    return form, form.filters() if request.GET else selectors.JournalFilters(), professionals


@never_cache
@require_GET
@patient_required
def journal(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    form, filters, professionals = _journal_filters(request, account)
    before_raw = request.GET.get("avant", "")
    before = int(before_raw) if before_raw.isdigit() else None
    page = selectors.journal_page(
        account.patient,
        account_user_id=account.user_id,
        filters=filters,
        before=before,
        professionals=professionals,
    )
    services.patient_trace(
        account,
        AuditAction.ESPACE_JOURNAL_READ,
        client_address=client_address(request),
        filters=filters.as_query(),
        before=before,
    )
    return render(
        request,
        "espace/journal.html",
        {"tab": "journal", "account": account, "form": form, "page": page, "query": filters.as_query()},
    )


@never_cache
@require_GET
@patient_required
def journal_export(
    request: HttpRequest, account: PatientAccount, fmt: str
) -> HttpResponse | StreamingHttpResponse:
    _, filters, _ = _journal_filters(request, account)
    response: HttpResponse | StreamingHttpResponse
    services.patient_trace(
        account,
        AuditAction.JOURNAL_EXPORT,
        client_address=client_address(request),
        format=fmt,
        filters=filters.as_query(),
    )
    if fmt == "pdf":
        pdf = exports.journal_pdf(account.patient, account_user_id=account.user_id, filters=filters)
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = 'attachment; filename="journal-acces.pdf"'
    else:
        response = StreamingHttpResponse(
            exports.journal_csv(account.patient, account_user_id=account.user_id, filters=filters),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="journal-acces.csv"'
    response["Cache-Control"] = "no-store"
    return response


# --- « Mes choix » ----------------------------------------------------------------------------


@never_cache
@require_GET
@patient_required
def choices(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    search = ProfessionalSearchForm(request.GET or None)
    found: list[Professional] = []
    if request.GET and search.is_valid():
        found = selectors.professionals_named(search.cleaned_data["nom"])
        services.patient_trace(
            account,
            AuditAction.ESPACE_PROFESSIONAL_SEARCH,
            client_address=client_address(request),
            results=len(found),
        )
    blocked = {block.professional_id for block in selectors.active_blocks(account.patient)}
    return render(
        request,
        "espace/choices.html",
        {
            "tab": "choices",
            "account": account,
            "search": search,
            "found": [(p, p.pk in blocked) for p in found],
            "blocks": selectors.active_blocks(account.patient),
            "documents": selectors.own_documents(account.patient),
            "notifications": NotificationsForm(initial={"channel": account.notify_channel}),
            "certificates": PatientCertificate.objects.filter(account=account).order_by("bound_at"),
        },
    )


@never_cache
@require_http_methods(["GET", "POST"])
@patient_required
def block(request: HttpRequest, account: PatientAccount, professional_id: int) -> HttpResponse:
    professional = Professional.objects.filter(pk=professional_id).first()
    if professional is None:
        services.patient_not_found(
            account,
            what="professional",
            object_id=str(professional_id),
            client_address=client_address(request),
        )
        return not_found_page(request)
    if request.method == "POST":
        services.professional_block(
            account=account, professional=professional, client_address=client_address(request)
        )
        messages.success(request, gettext("Ce professionnel ne peut plus accéder à votre dossier."))
        return redirect("espace:choices")
    return render(request, "espace/confirm_block.html", {"tab": "choices", "professional": professional})


@never_cache
@require_http_methods(["GET", "POST"])
@patient_required
def unblock(request: HttpRequest, account: PatientAccount, block_id: int) -> HttpResponse:
    found = selectors.active_blocks(account.patient).filter(pk=block_id).first()
    if found is None:
        services.patient_not_found(
            account, what="block", object_id=str(block_id), client_address=client_address(request)
        )
        return not_found_page(request)
    if request.method == "POST":
        services.professional_unblock(account=account, block=found)
        messages.success(request, gettext("Le refus est levé."))
        return redirect("espace:choices")
    return render(request, "espace/confirm_unblock.html", {"tab": "choices", "block": found})


@never_cache
@require_http_methods(["GET", "POST"])
@patient_required
def opposition(request: HttpRequest, account: PatientAccount, opposed: bool) -> HttpResponse:
    """« Fermer mon dossier » / « Rouvrir mon dossier »."""
    if request.method == "POST":
        try:
            services.record_opposition_set(
                account=account, opposed=opposed, client_address=client_address(request)
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                gettext("Votre dossier est fermé : aucun professionnel ne peut plus y accéder.")
                if opposed
                else gettext("Votre dossier est rouvert."),
            )
        return redirect("espace:choices")
    return render(request, "espace/confirm_opposition.html", {"tab": "choices", "opposed": opposed})


@require_POST
@patient_required
def acting_for(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    """« Agir pour »: a representative switches between their own record and a represented one."""
    chosen = request.POST.get("patient", "")
    if chosen in ("", "moi"):
        request.session.pop(ACTING_FOR_KEY, None)
        return redirect("espace:record")
    representation = next((r for r in account.represented if str(r.patient.public_id) == chosen), None)
    if representation is None:
        services.patient_not_found(
            account, what="representation", object_id=chosen, client_address=client_address(request)
        )
        return not_found_page(request)
    services.acting_for_choose(
        account=account, representation=representation, client_address=client_address(request)
    )
    request.session[ACTING_FOR_KEY] = chosen
    return redirect("espace:record")


@require_POST
@patient_required
def notifications(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    if account.acting_for is not None:
        messages.error(request, gettext("Les notifications se choisissent pour votre propre dossier."))
        return redirect("espace:choices")
    form = NotificationsForm(request.POST)
    if form.is_valid():
        try:
            services.notifications_set(
                account=account,
                channel=form.cleaned_data["channel"] or "",
                client_address=client_address(request),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, gettext("Votre choix de notifications est enregistré."))
    return redirect("espace:choices")
