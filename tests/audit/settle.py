"""For tests that read the chain right after writing events: with batched chaining
(``ESANTE_AUDIT_CHAINING=batched``) an event is chained by the leader's sequencer within the
second, not by ``audit_record``; ``settle`` runs that chainer's pass now (the real one,
``audit.chaining.chain_pending``), so the same assertions hold in both modes. In inline mode
nothing waits and it changes nothing."""

from collections.abc import Iterable

from esante.audit.chaining import chain_pending
from esante.audit.models import AuditEvent


def settle(events: Iterable[AuditEvent] = ()) -> list[AuditEvent]:
    """Chains every waiting event, then reads ``events`` again (their chain columns)."""
    chain_pending()
    settled = list(events)
    for event in settled:
        event.refresh_from_db()
    return settled
