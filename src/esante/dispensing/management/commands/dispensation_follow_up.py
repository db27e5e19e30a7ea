"""``esante dispensation_follow_up``: completes dispensations whose eDispensation document or
certified copy was not produced after the commit (a crash, a storage outage)."""

from typing import Any

from django.core.management.base import BaseCommand

from esante.dispensing.models import Dispensation
from esante.dispensing.services import dispensation_follow_up


class Command(BaseCommand):
    help = "Files missing eDispensation documents and issues missing certified copies."

    def handle(self, *args: Any, **options: Any) -> None:
        pending = (
            Dispensation.objects.filter(withdrawn_at__isnull=True, document__isnull=True)
            | Dispensation.objects.filter(withdrawn_at__isnull=True, certified_copies__isnull=True)
        ).distinct()
        done = 0
        for dispensation in pending.select_related("prescription__document__patient", "pharmacist"):
            dispensation_follow_up(dispensation=dispensation)
            done += 1
        self.stdout.write(f"dispensations completed: {done}")
