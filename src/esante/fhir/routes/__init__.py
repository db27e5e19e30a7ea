"""The resource routes of the API (each module's ``router``, added to ``api.api``). HTTP only:
each route checks the caller (``auth.caller``), asks the access gate, and maps the answer with
one mapping module per resource. Every event written while it runs names the software (``audit_via``)."""

from . import audit, documents, medication, patient, submission

__all__ = ["audit", "documents", "medication", "patient", "submission"]
