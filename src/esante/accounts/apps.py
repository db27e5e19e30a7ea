from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "esante.accounts"
    label = "accounts"
    verbose_name = "Comptes"
