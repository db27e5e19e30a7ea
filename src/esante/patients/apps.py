from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "esante.patients"
    label = "patients"
    verbose_name = "Patients"
