from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "esante.access"
    label = "access"
    verbose_name = "Accès aux dossiers"

    def ready(self) -> None:
        from esante.core.replica import register_trace_tables

        from .models import RecordOpening

        # Opening a record traces a read (a search's only trace is its audit event): a session
        # that only reads keeps its lag-tolerant reads on the standby (esante.core.replica,
        # "Read-your-writes").
        register_trace_tables(RecordOpening)
