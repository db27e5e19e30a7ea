"""Jobs of the dispensing app (``esante.core.jobs``): what follows a committed dispensation or
withdrawal, off the pharmacist's request, and the sweep that completes what a lost job left.

A job names its dispensation by primary key and reads it afresh: by the time it runs, a later
delivery or a withdrawal may have changed what the copy must carry, and
``certification.dispensation_follow_up`` then does only what is still needed.
"""

import datetime
import logging

from django.conf import settings
from huey import crontab

from esante.accounts.models import Professional
from esante.core.jobs import after_commit, job, periodic_job

from . import certification
from .models import Dispensation

logger = logging.getLogger(__name__)


@job()
def dispensation_complete(
    dispensation_id: int, actor_id: int | None = None, client_address: str | None = None, public_url: str = ""
) -> None:
    """Files the eDispensation document and issues the certified copy of a dispensation."""
    dispensation = (
        Dispensation.objects.select_related("prescription__document__patient", "pharmacist")
        .filter(pk=dispensation_id)
        .first()
    )
    if dispensation is None:  # rolled back after all: nothing to complete
        logger.warning("dispensation %s not found: job dropped", dispensation_id)
        return
    actor = Professional.objects.filter(pk=actor_id).first() if actor_id is not None else None
    certification.dispensation_follow_up(
        dispensation=dispensation, actor=actor, client_address=client_address, public_url=public_url
    )


def dispensation_complete_after_commit(
    dispensation: Dispensation,
    *,
    actor: Professional | None = None,
    client_address: str | None = None,
    public_url: str = "",
) -> None:
    """Queues ``dispensation_complete`` once the current transaction commits."""
    after_commit(
        dispensation_complete,
        dispensation.pk,
        actor_id=actor.pk if actor is not None else None,
        client_address=client_address,
        public_url=public_url,
    )


@periodic_job(crontab(minute="*/5"))
def dispensations_sweep() -> None:
    """Every 5 minutes in the consumer: ``esante dispensation_follow_up``, for the dispensations
    left unfinished longer than ``ESANTE_FOLLOW_UP_GRACE_SECONDS`` (their job was lost)."""
    grace = datetime.timedelta(seconds=settings.ESANTE_FOLLOW_UP_GRACE_SECONDS)
    done = certification.dispensations_complete(older_than=grace)
    if done:
        logger.warning("follow-up sweep completed %s dispensation(s) whose job was lost", done)
