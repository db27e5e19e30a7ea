from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from esante.audit.models import AuditChainHead
from esante.audit.verification import verify_chain


class Command(BaseCommand):
    help = "Re-computes the audit hash chain and checks it against the signed heads."

    def handle(self, *args: Any, **options: Any) -> None:
        total = AuditChainHead.objects.get(pk=1).sequence
        with tqdm(total=total, unit="évén.", disable=options["verbosity"] == 0, file=self.stderr) as bar:
            result = verify_chain(progress=bar.update)
            bar.update(result.checked - bar.n)
        for warning in result.warnings:
            self.stderr.write(f"warning: {warning}")
        if not result.ok:
            raise CommandError(
                f"audit trail BROKEN at event #{result.broken_sequence}: {result.problem} "
                f"({result.checked} events verified before it)"
            )
        self.stdout.write(
            f"audit trail intact: {result.checked} events, {result.heads_checked} signed heads verified"
        )
