"""The contract every login factor keeps, as a mixin (STYLE: "every login factor shares one
contract"): the right secret opens and is traced, a wrong one fails and is traced, repeated
failures throttle the attempt so that even the right secret is then refused, a single-use secret
is refused on replay, an expired one is refused. The device row lock while a code is verified is
held suite-wide by ``tests/security/test_row_locks.py``.

A test class names the factor's audited ``action`` and provides ``prepare`` (who logs in, and the
secret) and ``attempt`` (one try, right or wrong, from an address; True when it opened).
"""

import datetime
from typing import Any, ClassVar

import pytest
from django.utils import timezone
from freezegun import freeze_time

from esante.audit.models import AuditEvent

ADDRESS = "198.51.100.20"


class LoginFactorContract:
    action: ClassVar[str]
    #: Wrong tries from one address after which the right secret is refused too.
    failures_before_throttle: ClassVar[int] = 3
    single_use: ClassVar[bool] = False
    #: How long a secret lives (None: it does not expire).
    lifetime: ClassVar[datetime.timedelta | None] = None

    def prepare(self) -> Any:
        raise NotImplementedError

    def attempt(self, ctx: Any, *, right: bool, address: str = ADDRESS) -> bool:
        raise NotImplementedError

    def _outcomes(self) -> list[str]:
        return list(
            AuditEvent.objects.filter(action=self.action)
            .order_by("sequence")
            .values_list("outcome", flat=True)
        )

    @pytest.mark.django_db
    def test_the_right_secret_opens_and_is_traced(self) -> None:
        ctx = self.prepare()
        assert self.attempt(ctx, right=True) is True
        assert self._outcomes()[-1] == "success"

    @pytest.mark.django_db
    def test_a_wrong_secret_fails_and_is_traced(self) -> None:
        ctx = self.prepare()
        before = len(self._outcomes())
        assert self.attempt(ctx, right=False) is False
        outcomes = self._outcomes()
        assert len(outcomes) == before + 1 and outcomes[-1] in ("failure", "refused")

    @pytest.mark.django_db
    def test_repeated_failures_throttle_even_the_right_secret(self) -> None:
        ctx = self.prepare()
        for _ in range(self.failures_before_throttle):
            assert self.attempt(ctx, right=False) is False
        assert self.attempt(ctx, right=True) is False
        assert self._outcomes()[-1] in ("failure", "refused")

    @pytest.mark.django_db
    def test_a_single_use_secret_is_refused_on_replay(self) -> None:
        if not self.single_use:
            pytest.skip("this factor's secret is not single-use")
        ctx = self.prepare()
        assert self.attempt(ctx, right=True) is True
        assert self.attempt(ctx, right=True) is False
        assert self._outcomes()[-1] in ("failure", "refused")

    @pytest.mark.django_db
    def test_an_expired_secret_is_refused(self) -> None:
        if self.lifetime is None:
            pytest.skip("this factor's secret does not expire")
        start = timezone.now()
        with freeze_time(start):
            ctx = self.prepare()
        with freeze_time(start + self.lifetime + datetime.timedelta(seconds=1)):
            assert self.attempt(ctx, right=True) is False
        assert self._outcomes()[-1] in ("failure", "refused")
