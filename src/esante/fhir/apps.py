from django.apps import AppConfig


class FhirConfig(AppConfig):
    name = "esante.fhir"
    label = "fhir"
    verbose_name = "API FHIR"
