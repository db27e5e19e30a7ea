from typing import Any

from django.core.management.base import BaseCommand
from tqdm import tqdm

from esante.espace.models import PatientAccount
from esante.espace.notifications import access_digest_send, digest_accounts


class Command(BaseCommand):
    help = (
        "Envoie à chaque patient qui l'a choisi (e-mail ou SMS) le résumé des nouveaux accès à son "
        "dossier depuis le précédent ; à lancer chaque jour (cron, minuterie systemd)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        total = (
            PatientAccount.objects.filter(state=PatientAccount.State.ACTIVE)
            .exclude(notify_channel="")
            .count()
        )
        sent = failed = 0
        for account in tqdm(digest_accounts(), total=total, unit="compte", disable=total < 100):
            result = access_digest_send(account)
            sent += result is True
            failed += result is False
        self.stdout.write(f"résumés envoyés : {sent}, échecs : {failed} (sur {total} comptes)")
        if failed:
            self.stderr.write("des envois ont échoué : ils seront retentés à la prochaine exécution.")
