"""Forms of the eDocuments portal: patient search and the access dialog (parse input, nothing else)."""

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from esante.patients.selectors import patient_search_criteria

from .models import AccessGrant
from .selectors import page_number_of, page_size_of


class PatientSearchForm(forms.Form):
    """Guide p.12, "Recherche patient": Nom, Prénoms, Numéro assuré, Date de naissance, VALIDER."""

    name = forms.CharField(label=_("Nom"), max_length=100, required=False)
    first_name = forms.CharField(label=_("Prénoms"), max_length=150, required=False)
    matricule = forms.CharField(label=_("Numéro assuré"), max_length=20, required=False)
    birth_date = forms.DateField(
        label=_("Date de naissance"),
        required=False,
        input_formats=["%d/%m/%Y", "%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        error_messages={"invalid": _("Saisissez une date de naissance valide (JJ/MM/AAAA).")},
    )
    page = forms.CharField(required=False, widget=forms.HiddenInput)
    page_size = forms.CharField(label=_("Afficher"), required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            cleaned["criteria"] = patient_search_criteria(
                matricule=cleaned.get("matricule") or "",
                name=cleaned.get("name") or "",
                first_name=cleaned.get("first_name") or "",
                birth_date=cleaned.get("birth_date"),
            )
        except ValidationError as error:
            field = "matricule" if error.code in {"digits", "length", "date", "check_digit"} else None
            self.add_error(field, error)
        cleaned["page"] = page_number_of(cleaned.get("page") or 1)
        cleaned["page_size"] = page_size_of(cleaned.get("page_size"))
        return cleaned


#: Usual motifs offered in the access dialog; "Autre" asks for free text.
MOTIFS = [
    ("dispensation", _("Délivrance de médicaments")),
    ("consultation", _("Consultation")),
    ("follow-up", _("Suivi du traitement")),
    ("home-care", _("Soins à domicile")),
    ("hospital", _("Prise en charge hospitalière")),
    ("other", _("Autre (préciser)")),
]
OTHER_MOTIF = "other"

MODE_CHOICES = [
    (AccessGrant.Mode.CARE, _("J'accède au dossier du patient en engageant ma responsabilité.")),
    (AccessGrant.Mode.OWN_DOCUMENTS, _("J'accède en lecture seule aux documents dont je suis l'auteur")),
    (AccessGrant.Mode.EMERGENCY, _("J'accède en urgence au dossier du patient (bris de glace).")),
]


class AccessRequestForm(forms.Form):
    """Guide p.13, "Accès au dossier du patient". The services decide; this form only parses.

    Motif and conditions are checked by the grant services, so a refusal is traced.
    """

    mode = forms.ChoiceField(
        choices=MODE_CHOICES,
        widget=forms.RadioSelect,
        initial=AccessGrant.Mode.CARE,
        error_messages={
            "required": _("Choisissez un mode d'accès."),
            "invalid_choice": _("Choisissez un mode d'accès."),
        },
    )
    motif_choice = forms.ChoiceField(
        label=_("Motif"),
        choices=[("", "—"), *MOTIFS],
        required=False,
        error_messages={"invalid_choice": _("Motif inconnu.")},
    )
    motif_text = forms.CharField(
        label=_("Précisions"), max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    accept_conditions = forms.BooleanField(label=_("J'accepte les conditions d'accès"), required=False)

    def __init__(self, *args: Any, allow_emergency: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not allow_emergency:
            # Not offered on the page, but still accepted: a forged "emergency" reaches the
            # emergency service, which refuses it for this profession and traces the attempt.
            widget = self.fields["mode"].widget
            if isinstance(widget, forms.RadioSelect):
                widget.choices = [c for c in MODE_CHOICES if c[0] != AccessGrant.Mode.EMERGENCY]

    def motif(self) -> str:
        """The motif as traced: the chosen label, then the free text.

        The label is written in the platform's language (French), whatever language the portal
        showed it in: the trail and the patient's access journal read the same for everyone.
        """
        choice = self.cleaned_data.get("motif_choice") or ""
        text = (self.cleaned_data.get("motif_text") or "").strip()
        if self.cleaned_data.get("mode") == AccessGrant.Mode.EMERGENCY:
            return text
        with translation.override(settings.LANGUAGE_CODE):
            label = str(dict(MOTIFS).get(choice, "")) if choice != OTHER_MOTIF else ""
        return " — ".join(part for part in (label, text) if part)
