from django.apps import AppConfig


class DispensingConfig(AppConfig):
    name = "esante.dispensing"
    label = "dispensing"
    verbose_name = "Dispensations"
