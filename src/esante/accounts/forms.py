from django import forms
from django.core.exceptions import ValidationError


class TermsForm(forms.Form):
    accept = forms.BooleanField(
        label="En cochant cette case, j'accepte les Conditions Générales d'Utilisation.",
        error_messages={
            "required": "Vous devez accepter les Conditions Générales d'Utilisation pour continuer."
        },
    )


class ActivationCodeForm(forms.Form):
    received = forms.ChoiceField(
        label="Avez-vous reçu votre code d'activation ?",
        choices=[("oui", "Oui"), ("non", "Non")],
        widget=forms.RadioSelect,
        initial="oui",
    )
    matricule = forms.CharField(label="Matricule *", max_length=20, required=False)
    code = forms.CharField(
        label="Code d'activation *",
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("received") == "oui":
            if not data.get("matricule"):
                self.add_error("matricule", "Ce champ est obligatoire.")
            if not data.get("code"):
                self.add_error("code", "Ce champ est obligatoire.")
        return data


class SecurityForm(forms.Form):
    password1 = forms.CharField(
        label="Mot de passe *",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Confirmation du mot de passe *",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    channel = forms.ChoiceField(
        label="Code à usage unique à recevoir par",
        choices=[("sms", "Mobile"), ("email", "E-mail")],
        widget=forms.RadioSelect,
        initial="sms",
    )
    address = forms.CharField(label="Mobile * / E-mail *", max_length=254)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            raise ValidationError("Les deux mots de passe ne sont pas identiques.")
        return data


class OneTimeCodeForm(forms.Form):
    code = forms.RegexField(
        label="Code reçu par SMS ou par E-mail *",
        regex=r"^\s*\d{6}\s*$",
        error_messages={"invalid": "Le code comporte 6 chiffres."},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class LoginForm(forms.Form):
    matricule = forms.CharField(label="Matricule *", max_length=20)
    password = forms.CharField(
        label="Mot de passe *",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
