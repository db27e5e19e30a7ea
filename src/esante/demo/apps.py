from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "esante.demo"
    label = "demo"
    verbose_name = "Démonstration et service"
