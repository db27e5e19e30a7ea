from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.accounts.demo import DemoCertificate, DemoProfessional, demo_certificates_load
from esante.accounts.tls_origin import CertificateOrigin, certificate_origin_config
from esante.audit.anchoring import audit_anchor
from esante.demo.loading import DemoRefused, demo_check_allowed, demo_load
from esante.demo.serving import run


def _professional_line(professional: DemoProfessional) -> str:
    who = f"  {professional.profession} {professional.name}, matricule {professional.matricule}"
    if professional.password:
        return f"{who} : mot de passe {professional.password}, code par e-mail ({professional.email})"
    if professional.activation_code:
        return f"{who} : à activer, code d'activation {professional.activation_code}"
    return f"{who} : {professional.state}"


def _certificate_lines(certificates: list[DemoCertificate], password: str, origin: str) -> list[str]:
    lines = [
        f"Certificats de démonstration (PKCS#12, mot de passe {password}) — à importer dans le navigateur,",
        f"  puis « Connexion » sur la page de connexion ou à l'étape « Carte LuxTrust » ({origin}) :",
    ]
    for certificate in certificates:
        use = "connexion" if certificate.bound else "à associer à l'étape 1 de l'activation"
        lines.append(f"  {certificate.name} ({use}) : {certificate.p12_path}")
    return lines


class Command(BaseCommand):
    help = "Migrates, loads the demo data set (idempotent) and serves the platform on 127.0.0.1."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="load the data set and stop")
        parser.add_argument(
            "--certificate-port",
            type=int,
            default=8443,
            help="port of the certificate origin (HTTPS, client certificates); 0: none",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError(
                "refus : réglages de production actifs (ESANTE_SECRET_KEY défini sans ESANTE_DEBUG)."
            )
        call_command("migrate", interactive=False, verbosity=0)
        try:
            demo_check_allowed()
            summary = demo_load()
        except DemoRefused as exc:
            raise CommandError(str(exc)) from exc
        # The demo has just written this trail itself (never in production): its first head may
        # cover more than ESANTE_AUDIT_INITIAL_MAX_EVENTS events.
        audit_anchor(initial=True)
        url = f"http://127.0.0.1:{options['port']}/"
        certificate_lines: list[str] = []
        origin: CertificateOrigin | None = None
        if options["certificate_port"]:
            directory = settings.DATA_DIR / "certificats"
            certificates, password = demo_certificates_load(directory)
            origin = certificate_origin_config(host="127.0.0.1", port=options["certificate_port"])
            if not settings.ESANTE_CERTIFICATE_ORIGIN:
                # Read by the portal's workers, which gunicorn forks from this process.
                settings.ESANTE_CERTIFICATE_ORIGIN = origin.url
            certificate_lines = [
                *_certificate_lines(certificates, password, settings.ESANTE_CERTIFICATE_ORIGIN),
                "  autorité locale (à accepter, ou importer comme autorité de confiance) : "
                f"{directory / 'ca.pem'}",
                "",
            ]
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "eSanté eDocuments — démonstration",
                    f"  données : {settings.DATABASES['default']['NAME']}"
                    + (
                        " (déjà chargées)"
                        if summary.already_loaded
                        else f" ({summary.patients_created} patients créés)"
                    ),
                    f"  portail : {url}",
                    "  patient du guide : PIG Peppa, matricule 1904112000166",
                    "  pour commencer : « Je suis un professionnel » puis « J'active mon compte ».",
                    "  espace patient de PIG Peppa, matricule 1904112000166 : "
                    + (
                        f"à activer, code d'activation {summary.patient_activation_code}"
                        if summary.patient_activation_code
                        else "activé"
                    ),
                    "",
                    "Professionnels de démonstration (codes à usage unique : affichés ici et écrits dans "
                    f"{settings.OUTBOX_DIR}) :",
                    *[_professional_line(p) for p in summary.professionals],
                    "",
                    *certificate_lines,
                ]
            )
        )
        if not options["no_serve"]:
            run(host="127.0.0.1", port=options["port"], workers=2, threads=4, certificate_origin=origin)
