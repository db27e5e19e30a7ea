import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.fhir.services import software_client_register


class Command(BaseCommand):
    help = (
        "Enregistre un logiciel client de l'API FHIR. Affiche son identifiant et, s'il en a un, son "
        "secret : une seule fois (seule son empreinte est conservée)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="nom du logiciel")
        parser.add_argument("--organisation", required=True, help="éditeur ou organisation")
        parser.add_argument("--kind", required=True, choices=["interactive", "backend"])
        parser.add_argument("--scope", action="append", required=True, help="scope autorisé (répétable)")
        parser.add_argument(
            "--redirect-uri", action="append", default=[], help="adresse de retour (répétable)"
        )
        parser.add_argument("--public", action="store_true", help="client public (PKCE seul, sans secret)")
        parser.add_argument("--jwks", default="", help="fichier JWKS (clés publiques), ou JSON en ligne")
        parser.add_argument("--jwks-url", default="", help="adresse https du JWKS du client")

    def handle(self, *args: Any, **options: Any) -> None:
        jwks = None
        if options["jwks"]:
            text = options["jwks"]
            if not text.lstrip().startswith("{"):
                try:
                    text = Path(text).read_text(encoding="utf-8")
                except OSError as exc:
                    raise CommandError(f"refus : JWKS illisible ({exc})") from exc
            try:
                jwks = json.loads(text)
            except ValueError as exc:
                raise CommandError("refus : JWKS invalide (JSON attendu)") from exc
        scopes = [s for value in options["scope"] for s in value.split()]
        try:
            client, secret = software_client_register(
                name=options["name"],
                organisation=options["organisation"],
                kind=options["kind"],
                scopes=scopes,
                redirect_uris=options["redirect_uri"],
                jwks=jwks,
                jwks_uri=options["jwks_url"],
                public=options["public"],
                actor_label="system:cli",
            )
        except ValidationError as exc:
            raise CommandError("refus : " + " ".join(exc.messages)) from exc
        self.stdout.write(f"logiciel enregistré : {client}")
        self.stdout.write(f"client_id: {client.client_id}")
        self.stdout.write(f"authentification: {client.auth_method}")
        if secret:
            self.stdout.write(f"client_secret: {secret}")
            self.stdout.write("(ce secret n'est affiché qu'une fois : seule son empreinte est conservée)")
