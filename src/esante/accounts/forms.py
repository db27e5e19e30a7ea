"""Forms of the accounts pages: terms, activation steps, login (parse input, nothing else)."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _


class TermsForm(forms.Form):
    accept = forms.BooleanField(
        label=_("En cochant cette case, j'accepte les Conditions Générales d'Utilisation."),
        error_messages={
            "required": _("Vous devez accepter les Conditions Générales d'Utilisation pour continuer.")
        },
    )


class ActivationCodeForm(forms.Form):
    received = forms.ChoiceField(
        label=_("Avez-vous reçu votre code d'activation ?"),
        choices=[("oui", _("Oui")), ("non", _("Non"))],
        widget=forms.RadioSelect,
        initial="oui",
    )
    matricule = forms.CharField(label=_("Matricule *"), max_length=20, required=False)
    code = forms.CharField(
        label=_("Code d'activation *"),
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("received") == "oui":
            if not data.get("matricule"):
                self.add_error("matricule", self.fields["matricule"].error_messages["required"])
            if not data.get("code"):
                self.add_error("code", self.fields["code"].error_messages["required"])
        return data


class SecurityForm(forms.Form):
    password1 = forms.CharField(
        label=_("Mot de passe *"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("Confirmation du mot de passe *"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    channel = forms.ChoiceField(
        label=_("Code à usage unique à recevoir par"),
        choices=[("sms", _("Mobile")), ("email", _("E-mail"))],
        widget=forms.RadioSelect,
        initial="sms",
    )
    address = forms.CharField(label=_("Mobile * / E-mail *"), max_length=254)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            raise ValidationError(_("Les deux mots de passe ne sont pas identiques."))
        return data


class OneTimeCodeForm(forms.Form):
    code = forms.RegexField(
        label=_("Code reçu par SMS ou par E-mail *"),
        regex=r"^\s*\d{6}\s*$",
        error_messages={"invalid": _("Le code comporte 6 chiffres.")},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class LoginForm(forms.Form):
    matricule = forms.CharField(label=_("Matricule *"), max_length=20)
    password = forms.CharField(
        label=_("Mot de passe *"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class NewPasswordForm(forms.Form):
    """ "Mot de passe oublié", with the certificate: the new password twice (validated by the
    service with Django's validators)."""

    password1 = forms.CharField(
        label=_("Nouveau mot de passe *"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("Confirmation du mot de passe *"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", _("Les deux mots de passe ne sont pas identiques."))
        return data
