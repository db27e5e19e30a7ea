from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import readiness, replica_report
from .metrics import metrics_allowed, metrics_page


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    """Guide p.3, step 1: "JE SUIS « Un professionnel »"."""
    return render(request, "core/landing.html")


@require_GET
def professional_home(request: HttpRequest) -> HttpResponse:
    """Guide p.3, step 2 and p.10: activate the account, or log in."""
    return render(request, "core/professional.html")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: 200 when the database answers, 503 otherwise (readiness: ``readyz``)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any database failure means "not ready"
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness for the load balancer: 200 when the database answers, the migrations are applied
    and the audit trail can be signed; 503 with the first reason otherwise (``core.health``). A
    hot standby is reported (``replica``) but never makes the server unready: the primary is enough."""
    checks = readiness()
    problems = [problem for problem in checks.values() if problem and problem != "skipped"]
    body: dict[str, object] = {"status": "unavailable" if problems else "ok"}
    body["checks"] = {name: problem or "ok" for name, problem in checks.items()}
    if settings.ESANTE_REPLICA:
        body["replica"] = replica_report()
    if problems:
        body["reason"] = problems[0]
    return JsonResponse(body, status=503 if problems else 200)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for the monitoring network only (``ESANTE_METRICS_ALLOWED``); anyone
    else gets the platform's ordinary 404."""
    if not metrics_allowed(request):
        raise Http404
    content, content_type = metrics_page()
    return HttpResponse(content, content_type=content_type)
