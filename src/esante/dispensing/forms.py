"""Forms of the portal: "Marquer comme dispensé" (with the dispensation grid) and the withdrawal."""

from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .models import Dispensation
from .selectors import LineState

ACCEPT_LABEL = _("Je comprends et j'accepte ce principe.")


class DispenseForm(forms.Form):
    """Status choice, the grid (used for a partial dispensation), the version seen, the acceptance."""

    kind = forms.ChoiceField(
        label=_("Status"),
        choices=Dispensation.Kind.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Choisissez « Dispensée entièrement » ou « Dispensée partiellement ».")
        },
    )
    state_version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    accept = forms.BooleanField(
        label=ACCEPT_LABEL,
        required=True,
        error_messages={"required": _("Cochez « Je comprends et j'accepte ce principe. » pour valider.")},
    )

    def __init__(self, *args: Any, line_states: Sequence[LineState], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line_states = list(line_states)
        for state in self.line_states:
            field = forms.IntegerField(
                label=gettext("Délivré maintenant — %(medication)s") % {"medication": state.line.medication},
                min_value=0,
                max_value=100_000,
                required=False,
                widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
            )
            # A hint for the browser only: the service decides (and traces) an over-delivery.
            field.widget.attrs["max"] = state.remaining
            self.fields[self.line_field(state)] = field

    @staticmethod
    def line_field(state: LineState) -> str:
        return f"line_{state.line.pk}"

    def grid(self) -> list[tuple[LineState, forms.BoundField]]:
        return [(state, self[self.line_field(state)]) for state in self.line_states]

    def delivered(self) -> dict[int, int]:
        """{prescription line id: quantity delivered now} from the grid (blank = 0)."""
        return {
            state.line.pk: self.cleaned_data.get(self.line_field(state)) or 0 for state in self.line_states
        }


class WithdrawForm(forms.Form):
    reason = forms.CharField(
        label=_("Motif du retrait"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": _("Le motif du retrait est obligatoire.")},
    )
