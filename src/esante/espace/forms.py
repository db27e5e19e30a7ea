"""Forms of the patients' portal (parse input, nothing else)."""

import datetime
from collections.abc import Sequence
from typing import Any, cast

from django import forms
from django.utils.translation import gettext_lazy as _

from esante.accounts.models import Professional

from .models import PatientAccount
from .selectors import (
    JOURNAL_KINDS,
    JournalFilters,
    journal_kind_label,
    profession_labels,
    professional_label,
)


class PatientCodeForm(forms.Form):
    matricule = forms.CharField(label=_("Matricule *"), max_length=20)
    code = forms.CharField(
        label=_("Code d'activation *"), max_length=40, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    accept = forms.BooleanField(
        label=_("En cochant cette case, j'accepte les Conditions Générales d'Utilisation."),
        error_messages={
            "required": _("Vous devez accepter les Conditions Générales d'Utilisation pour continuer.")
        },
    )


class CertificateActivationForm(forms.Form):
    """Step 1 by certificate: only the terms (the certificate says who the patient is)."""

    accept = forms.BooleanField(
        label=_("En cochant cette case, j'accepte les Conditions Générales d'Utilisation."),
        error_messages={
            "required": _("Vous devez accepter les Conditions Générales d'Utilisation pour continuer.")
        },
    )


class JournalFilterForm(forms.Form):
    du = forms.DateField(label=_("Du"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    au = forms.DateField(label=_("Au"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    type = forms.ChoiceField(label=_("Type"), required=False)
    professionnel = forms.ChoiceField(label=_("Professionnel"), required=False)

    def __init__(self, *args: Any, professionals: Sequence[Professional] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kinds: list[tuple[str, str]] = [("", str(_("Tous")))]
        kinds += [(kind, journal_kind_label(kind)) for kind in JOURNAL_KINDS]
        people: list[tuple[str, str]] = [("", str(_("Tous")))]
        labels = profession_labels()
        people += [(p.matricule, professional_label(p, labels)) for p in professionals]
        cast(forms.ChoiceField, self.fields["type"]).choices = kinds
        cast(forms.ChoiceField, self.fields["professionnel"]).choices = people

    def filters(self) -> JournalFilters:
        if not self.is_valid():
            return JournalFilters()
        since: datetime.date | None = self.cleaned_data.get("du")
        until: datetime.date | None = self.cleaned_data.get("au")
        return JournalFilters(
            since=since,
            until=until,
            kind=self.cleaned_data.get("type") or "",
            professional=self.cleaned_data.get("professionnel") or "",
        )


class ProfessionalSearchForm(forms.Form):
    nom = forms.CharField(label=_("Nom du professionnel"), max_length=100, min_length=2)


class NotificationsForm(forms.Form):
    channel = forms.ChoiceField(
        label=_("Me prévenir des accès à mon dossier par"),
        choices=PatientAccount.Channel.choices,
        widget=forms.RadioSelect,
        required=False,
    )
