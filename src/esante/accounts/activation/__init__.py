"""The five-step activation (guide pp. 4-9), as services over ``ActivationWizard``.

Each service takes the wizard found by the key held in the browser's session, refuses unless the
wizard stands at the step the service belongs to (``WizardStepError``), and moves it on by one
step. The professional's account is written only by ``_activation_complete``, at the end of step 4,
in one transaction that also consumes the activation letter: two wizards racing with one letter
produce one activation.
"""

from .certificate import wizard_certificate, wizard_certificate_skip
from .code import wizard_code
from .security import wizard_information, wizard_security_choose, wizard_security_verify
from .wizard import StepOutcome, WizardStepError, wizard_back, wizard_for_key, wizard_start

__all__ = [
    "StepOutcome",
    "WizardStepError",
    "wizard_back",
    "wizard_certificate",
    "wizard_certificate_skip",
    "wizard_code",
    "wizard_for_key",
    "wizard_information",
    "wizard_security_choose",
    "wizard_security_verify",
    "wizard_start",
]
