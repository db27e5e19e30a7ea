from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from esante.audit.anchoring import heads_copy_files
from esante.audit.models import AuditChainHead
from esante.audit.verification import verify_chain

EXIT_INTACT = 0
EXIT_BROKEN = 1
EXIT_UNSIGNED_TAIL = 3
EXIT_COPY_LAGGING = 4
EXIT_NO_KEY = 5


class Command(BaseCommand):
    help = (
        "Re-computes the audit hash chain and checks it against the signed heads. Exit status: "
        f"{EXIT_INTACT} = intact and its last event covered by a signed head; "
        f"{EXIT_BROKEN} = broken (names the first broken event, or the heads files' problem); "
        f"{EXIT_UNSIGNED_TAIL} = intact up to the last signed head, but N events after it are unsigned "
        "(nothing vouches for them: they may have been changed, removed or added); "
        f"{EXIT_COPY_LAGGING} = intact and signed, but a copy of the heads file lags (holds only the "
        "first heads: its volume was away; the signer catches it up); "
        f"{EXIT_NO_KEY} = no key to verify with (no public key, or no MAC key while events carry a MAC): "
        "nothing verified, no key created."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--heads",
            action="append",
            type=Path,
            default=[],
            metavar="PATH",
            help="a copy of the heads file (another volume, a witness's export) that must hold exactly "
            "the same signed heads; repeatable; ESANTE_AUDIT_HEADS_COPY_FILE is always checked",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            metavar="N",
            help="check ranges of the trail in N processes first (the database serves N connections); "
            "the verdict is the same",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        copies = list(dict.fromkeys([*heads_copy_files(), *options["heads"]]))
        total = AuditChainHead.objects.get(pk=1).sequence
        with tqdm(total=total, unit="évén.", disable=options["verbosity"] == 0, file=self.stderr) as bar:
            result = verify_chain(progress=bar.update, copies=copies, processes=max(1, options["processes"]))
            bar.update(result.checked - bar.n)
        if result.missing_key:
            raise CommandError(f"audit trail NOT VERIFIED: {result.missing_key}", returncode=EXIT_NO_KEY)
        if not result.ok:
            where = f" at event #{result.broken_sequence}" if result.broken_sequence is not None else ""
            raise CommandError(
                f"audit trail BROKEN{where}: {result.problem} ({result.checked} events verified before it)",
                returncode=EXIT_BROKEN,
            )
        lagging = "".join(f"\nheads file copy LAGGING: {line}" for line in result.lagging)
        legacy = (
            f"; {result.legacy} of them legacy, unkeyed events (written before the MAC column existed)"
            if result.legacy
            else ""
        )
        if result.pending:
            legacy += (
                f"; {result.pending} more events wait for the chainer (batched chaining), their intake "
                "MAC verified"
            )
        if result.unsigned:
            signed = result.last_signed
            since = (
                f"the last signed head #{signed.sequence} ({signed.signed_at})"
                if signed is not None
                else "the start: no head is signed yet"
            )
            raise CommandError(
                f"audit trail UNSIGNED TAIL: {result.checked} events chain correctly, but the "
                f"{result.unsigned} events after {since} (#{result.signed_sequence + 1} to "
                f"#{result.last_sequence}) are covered by no signature and cannot be vouched for "
                "(changed, removed or added events there would go unseen). `esante serve` signs new "
                "events within ESANTE_AUDIT_ANCHOR_SECONDS: run verify_audit again; if the tail stays "
                "unsigned, find out why before signing it with `esante anchor_audit`." + legacy + lagging,
                returncode=EXIT_UNSIGNED_TAIL,
            )
        if not result.checked:
            self.stdout.write("audit trail empty: nothing to verify")
            return
        summary = (
            f"audit trail intact: {result.checked} events, all covered by the last signed head "
            f"#{result.signed_sequence}; {result.heads_checked} signed heads verified"
            + (f" against {len(copies)} copies of the heads file" if copies else "")
            + legacy
            + (
                f"; public log: {result.leaves} leaves opened, the roots of its {result.checkpoints} "
                "signed checkpoints recomputed"
                if result.leaves or result.checkpoints
                else ""
            )
        )
        if result.lagging:
            raise CommandError(summary + lagging, returncode=EXIT_COPY_LAGGING)
        self.stdout.write(summary)
