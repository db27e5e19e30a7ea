from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "esante.documents"
    label = "documents"
    verbose_name = "Documents"
