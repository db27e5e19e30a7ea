from django.db import models


class DemoDataSet(models.Model):
    """Marks a database as holding the demo data set; `esante demo` refuses any other database."""

    loaded_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name = "jeu de données de démonstration"

    def __str__(self) -> str:
        return f"démonstration v{self.version} ({self.loaded_at:%Y-%m-%d})"
