from django.conf import settings
from django.db import models

from .catalogue import AuditOutcome


class AuditEvent(models.Model):
    """One traced access or action. Append-only: database triggers refuse UPDATE, DELETE, TRUNCATE.

    ``canonical`` holds the exact bytes (UTF-8 JSON) that were hashed; ``hash`` is
    SHA-256(canonical), and the canonical content includes the previous event's hash, so the
    events form one chain. The other columns repeat the canonical content for querying;
    ``esante verify_audit`` checks that they agree with it. ``mac`` is a keyed MAC of ``hash``.

    Batched chaining (``AUDIT_CHAINING = "batched"``, ``esante.audit.chaining``): an event is first
    written *unchained*, its chain columns (``sequence``, ``prev_hash``, ``hash``, ``canonical``)
    NULL and ``mac`` holding its intake MAC (a keyed MAC of its content); the chainer then fills
    them in once, in a batch, with exactly what an inline write would have stored. The triggers
    allow that one UPDATE and nothing else.
    """

    Outcome = AuditOutcome

    # NULL while the event waits for the chainer (batched chaining).
    sequence = models.BigIntegerField("n°", unique=True, null=True)
    created_at = models.DateTimeField("date")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField("acteur", max_length=200, blank=True)
    action = models.CharField("action", max_length=64, db_index=True)
    outcome = models.CharField("résultat", max_length=16, choices=Outcome.choices)
    patient = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    object_type = models.CharField("type d'objet", max_length=32, blank=True)
    object_id = models.CharField("objet", max_length=64, blank=True)
    motif = models.CharField("motif", max_length=500, blank=True)
    client_address = models.GenericIPAddressField("adresse du client", null=True, blank=True)
    details = models.JSONField("détails", default=dict, blank=True)
    canonical = models.TextField(editable=False, null=True)  # noqa: DJ001 - NULL: not chained yet
    prev_hash = models.CharField(max_length=64, editable=False, null=True)  # noqa: DJ001 - idem
    hash = models.CharField(max_length=64, editable=False, null=True)  # noqa: DJ001 - idem
    # HMAC-SHA256(MAC key, hash), the key kept outside the database (``audit.keys``). NULL only
    # for events written before the column existed ("legacy, unkeyed"): NULL, not "", so the column
    # is added without rewriting the append-only table.
    mac = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001

    class Meta:
        verbose_name = "événement d'audit"
        verbose_name_plural = "journal d'audit"
        ordering = ["sequence"]
        indexes = [
            models.Index(fields=["patient", "sequence"], name="audit_patient_seq_idx"),
            # A patient's journal, newest first: by id, which every event has when it is written
            # (its sequence may come later, when the chain is extended in batches).
            models.Index(fields=["patient", "id"], name="audit_patient_id_idx"),
            models.Index(fields=["actor", "sequence"], name="audit_actor_seq_idx"),
            # A professional's recent patient searches (rate limit, results shown): a search
            # leaves no trace but its event.
            models.Index(
                fields=["actor", "created_at"],
                name="audit_search_actor_idx",
                condition=models.Q(action="patient.search", outcome="success"),
            ),
            # The events waiting for the chainer, in write order: empty but for the last instant.
            models.Index(fields=["id"], name="audit_unchained_idx", condition=models.Q(sequence=None)),
        ]

    def __str__(self) -> str:
        number = f"#{self.sequence}" if self.sequence is not None else f"(id {self.pk}, not chained yet)"
        return f"{number} {self.action} {self.outcome}"


class AuditChainHead(models.Model):
    """The chain's current head, one row. Locked (SELECT ... FOR UPDATE) by each append, so
    concurrent writers queue on it and the chain never forks."""

    sequence = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = "tête de la chaîne d'audit"

    def __str__(self) -> str:
        return f"#{self.sequence} {self.hash}"
