"""Admin helpers shared by the apps: operators' reads of patient data are traced.

Nothing is registered here; the apps' ``admin`` modules build on these classes.
"""

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse

from esante.audit.catalogue import AuditAction

from .http import client_address
from .services import operator_action_record


class ReadTracedAdmin(admin.ModelAdmin):
    """A model admin whose change page, when an operator opens it (GET), writes an audit event;
    its list page writes one too (``list_action``, with the search and the result count).

    ``read_action`` and ``list_action`` (members of the audit catalogue) name the events;
    ``traced_patient`` says which patient's data the page shows, so the read appears in that
    patient's access journal. The event is written before the page is rendered: if it cannot be
    written, the page is not shown.
    """

    read_action: AuditAction
    list_action: AuditAction

    def traced_patient(self, obj: Any) -> Any:
        """The patient whose data the change page of ``obj`` shows (``obj.patient`` by default)."""
        return getattr(obj, "patient", None)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        # 200 only: a missing object redirects, a refused one raises before this point.
        if request.method == "GET" and response.status_code == 200:
            obj = self.get_object(request, unquote(object_id))
            if obj is not None:
                operator_action_record(
                    action=self.read_action,
                    operator=request.user,
                    patient=self.traced_patient(obj),
                    object_type=obj._meta.model_name or "",
                    object_id=obj.pk,
                    client_address=client_address(request),
                )
        return response

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        changelist = context.get("cl")
        if request.method == "GET" and response.status_code == 200 and changelist is not None:
            operator_action_record(
                action=self.list_action,
                operator=request.user,
                object_type=self.model._meta.model_name or "",
                client_address=client_address(request),
                details={
                    "search": request.GET.get("q", "")[:100],
                    "filters": {k: v[:100] for k, v in request.GET.items() if k not in ("q", "p", "o")},
                    "results": changelist.result_count,
                    "page": changelist.page_num,
                },
            )
        return response
