"""What the API says about itself: the CapabilityStatement (``/metadata``) and the SMART
configuration (``/.well-known/smart-configuration``). Both are built from ``RESOURCES`` and the
OAuth settings, so they describe exactly what the routes serve."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from .scopes import SUPPORTED_SCOPES

#: Resource types served, with their interactions, search parameters and operations.
RESOURCES: list[dict[str, Any]] = [
    {
        "type": "Patient",
        "profile": "https://profiles.ihe.net/ITI/PDQm/StructureDefinition/IHE.PDQm.Patient",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {"name": "_id", "type": "token"},
            {"name": "identifier", "type": "token"},
            {"name": "family", "type": "string"},
            {"name": "given", "type": "string"},
            {"name": "birthdate", "type": "date"},
            {"name": "gender", "type": "token"},
        ],
        "operation": [
            {"name": "declare-access", "definition": "urn:esante:fhir:OperationDefinition:declare-access"}
        ],
    },
    {
        "type": "DocumentReference",
        "profile": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Minimal.DocumentReference",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {"name": "patient", "type": "reference"},
            {"name": "status", "type": "token"},
            {"name": "date", "type": "date"},
            {"name": "type", "type": "token"},
            {"name": "category", "type": "token"},
            {"name": "patient.identifier", "type": "token"},
            {"name": "author.family", "type": "string"},
        ],
    },
    {
        "type": "MedicationRequest",
        "interaction": [{"code": "search-type"}],
        "searchParam": [
            {"name": "patient", "type": "reference"},
            {"name": "status", "type": "token"},
            {"name": "authoredon", "type": "date"},
        ],
    },
    {
        "type": "MedicationDispense",
        "interaction": [{"code": "create"}, {"code": "update"}],
        "conditionalCreate": False,
        "updateCreate": False,
        "documentation": "update: only the withdrawal (entered-in-error, statusReasonCodeableConcept.text).",
    },
    {
        "type": "Binary",
        "interaction": [{"code": "read"}],
        "documentation": "La copie certifiée conforme d'une dispensation (MedicationDispense."
        "supportingInformation) : application/pdf, ou la ressource Binary en application/fhir+json.",
    },
    {
        "type": "AuditEvent",
        "profile": "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead",
        "interaction": [{"code": "search-type"}],
        "searchParam": [{"name": "date", "type": "date"}],
    },
]


def base_url(request: HttpRequest) -> str:
    """The API's absolute base (``https://host/fhir/R4``), from ``ESANTE_PUBLIC_URL`` or the request."""
    public = str(getattr(settings, "ESANTE_PUBLIC_URL", "") or "").rstrip("/")
    root = reverse("fhir:api-root").rstrip("/")
    return f"{public}{root}" if public else request.build_absolute_uri(root)


def _absolute(request: HttpRequest, name: str) -> str:
    public = str(getattr(settings, "ESANTE_PUBLIC_URL", "") or "").rstrip("/")
    path = reverse(name)
    return f"{public}{path}" if public else request.build_absolute_uri(path)


def oauth_endpoints(request: HttpRequest) -> dict[str, str]:
    """The authorization server's endpoints, absolute."""
    return {
        "authorize": _absolute(request, "fhir:authorize"),
        "token": _absolute(request, "fhir:token"),
        "revoke": _absolute(request, "fhir:revoke"),
        "manage": _absolute(request, "fhir-portal:authorised_software"),
    }


def smart_configuration(request: HttpRequest) -> dict[str, Any]:
    """SMART App Launch 2.x discovery document."""
    endpoints = oauth_endpoints(request)
    return {
        "issuer": base_url(request),
        "authorization_endpoint": endpoints["authorize"],
        "token_endpoint": endpoints["token"],
        "revocation_endpoint": endpoints["revoke"],
        "management_endpoint": endpoints["manage"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "ES256", "ES384"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": [*SUPPORTED_SCOPES, "offline_access"],
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "permission-offline",
            "permission-user",
            "permission-v2",
        ],
    }


def capability_statement(request: HttpRequest) -> dict[str, Any]:
    """The CapabilityStatement of this server (FHIR R4, JSON, SMART on FHIR security)."""
    endpoints = oauth_endpoints(request)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-02",
        "publisher": "eSanté eDocuments",
        "kind": "instance",
        "software": {"name": "eSanté eDocuments", "version": "0.1.0"},
        "implementation": {
            "description": "API FHIR R4 de la plateforme eSanté eDocuments",
            "url": base_url(request),
        },
        "fhirVersion": "4.0.1",
        # XML for Patient, DocumentReference and this statement (PDQm, MHD): ``formats``.
        "format": ["application/fhir+json", "application/fhir+xml"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [
                                {"url": "authorize", "valueUri": endpoints["authorize"]},
                                {"url": "token", "valueUri": endpoints["token"]},
                                {"url": "revoke", "valueUri": endpoints["revoke"]},
                                {"url": "manage", "valueUri": endpoints["manage"]},
                            ],
                        }
                    ],
                    "description": "OAuth 2.0 (SMART App Launch, SMART Backend Services, IHE IUA).",
                },
                "resource": RESOURCES,
                # ITI-65 Provide Document Bundle (backend services, system/DocumentReference.c).
                "interaction": [{"code": "transaction"}],
            }
        ],
    }
