"""The public log's storage: its leaves (one per audit event, with the salt that opens the
commitment), its tiles (C2SP tlog-tiles: 256 hashes a tile, level by level), the sequencer's state
and the signed checkpoints. Written only by ``tlog.sequencer``, one transaction a batch."""

from django.db import models


class LogLeaf(models.Model):
    """An audit event's place in the log. ``index`` is the Merkle leaf index, assigned in the
    order of the events' sequence numbers, without gaps. ``commitment`` is
    SHA-256(``salt`` || the event's canonical bytes) (``tlog.leaf``): public, it reveals nothing;
    ``salt`` is shown only in the patient's own journal."""

    index = models.BigIntegerField("n° de feuille", primary_key=True)
    event = models.OneToOneField("audit.AuditEvent", on_delete=models.PROTECT, related_name="+")
    salt = models.BinaryField(max_length=32)
    commitment = models.BinaryField(max_length=32)

    class Meta:
        verbose_name = "feuille du journal public"
        verbose_name_plural = "feuilles du journal public"
        ordering = ["index"]

    def __str__(self) -> str:
        return f"leaf {self.index}"


class LogTile(models.Model):
    """A tile (C2SP tlog-tiles, height 8): the hashes at tree level 8 x ``level`` with indexes
    256 x ``index`` ... 256 x ``index`` + width - 1, concatenated (32 bytes each). Only the
    rightmost tile of a level grows; once it holds 256 hashes it never changes."""

    level = models.SmallIntegerField()
    index = models.BigIntegerField()
    hashes = models.BinaryField()

    class Meta:
        verbose_name = "tuile du journal public"
        constraints = [models.UniqueConstraint(fields=["level", "index"], name="tlog_tile_unique")]

    def __str__(self) -> str:
        return f"tile {self.level}/{self.index} ({len(self.hashes) // 32})"


class LogState(models.Model):
    """The sequencer's state, one row, locked by each batch: the tree size, its root, and the last
    audit event sequenced (its chain hash and whether it carried a MAC, so that the next batch
    checks that the events it takes still chain from it)."""

    size = models.BigIntegerField(default=0)
    root = models.BinaryField()
    last_sequence = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)
    last_keyed = models.BooleanField(default=False)

    class Meta:
        verbose_name = "état du journal public"

    def __str__(self) -> str:
        return f"size {self.size}"


class LogCheckpoint(models.Model):
    """A signed checkpoint (C2SP tlog-checkpoint as a signed note), written in the same
    transaction as the batch that brought the tree to ``size``. Once the witness has cosigned it
    (``tlog.witnessing``), ``cosignature`` holds the witness's signature line(s), published after
    the log's own; ``witness_refusal`` the witness's answer when it refused (then it is not asked
    again for this checkpoint)."""

    size = models.BigIntegerField("taille", unique=True)
    root = models.BinaryField()
    note = models.TextField()
    created_at = models.DateTimeField("date")
    cosignature = models.TextField("cosignature du témoin", blank=True, default="")
    witness_refusal = models.TextField("refus du témoin", blank=True, default="")

    class Meta:
        verbose_name = "point de contrôle"
        verbose_name_plural = "points de contrôle"
        ordering = ["size"]

    def __str__(self) -> str:
        return f"checkpoint {self.size}"

    @property
    def published(self) -> str:
        """The signed note as published: the log's signature, then the witness's cosignature."""
        return self.note + self.cosignature
