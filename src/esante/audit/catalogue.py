"""The closed catalogue of audited actions and their outcomes.

Every event of the trail names one ``AuditAction``: ``audit_record`` accepts nothing else, so an
action cannot be invented at the call site and every action has its labels. Each member carries
a French, German and English label written for a patient reading their own access journal, and
whether it concerns a patient (it then appears in that patient's journal). The stored value is
the member's string (``record.open``, ``document.read``, ...), the same as the trail has always
held: no stored event needs rewriting.
"""

import enum

from django.db import models
from django.utils.translation import get_language

LANGUAGES = ("fr", "de", "en")


def _language(language: str | None) -> str:
    code = (language or get_language() or "fr")[:2].lower()
    return code if code in LANGUAGES else "fr"


class AuditOutcome(models.TextChoices):
    """How the traced attempt ended: done, refused by a rule, or failed (a wrong code, say)."""

    SUCCESS = "success", "Succès"
    REFUSED = "refused", "Refus"
    FAILURE = "failure", "Échec"

    @property
    def labels(self) -> dict[str, str]:
        return _OUTCOME_LABELS[self.value]

    def label(self, language: str | None = None) -> str:
        """The outcome in ``language`` (default: the active language; French otherwise)."""
        return self.labels[_language(language)]


_OUTCOME_LABELS = {
    "success": {"fr": "Succès", "de": "Erfolgt", "en": "Done"},
    "refused": {"fr": "Refus", "de": "Abgelehnt", "en": "Refused"},
    "failure": {"fr": "Échec", "de": "Fehlgeschlagen", "en": "Failed"},
}


class AuditAction(enum.StrEnum):
    """One audited action. ``value`` is what the trail stores; ``fr``/``de``/``en`` the journal's
    labels; ``concerns_patient`` whether events of this action name a patient."""

    fr: str
    de: str
    en: str
    concerns_patient: bool

    def __new__(cls, value: str, fr: str, de: str, en: str, concerns_patient: bool) -> "AuditAction":
        member = str.__new__(cls, value)
        member._value_ = value
        member.fr, member.de, member.en = fr, de, en
        member.concerns_patient = concerns_patient
        return member

    @classmethod
    def of(cls, value: str) -> "AuditAction":
        """The member whose stored value is ``value``; ``ValueError`` when the catalogue has none."""
        return cls(value)  # type: ignore[call-arg]

    @property
    def labels(self) -> dict[str, str]:
        return {"fr": self.fr, "de": self.de, "en": self.en}

    def label(self, language: str | None = None) -> str:
        """The action in ``language`` (default: the active language; French otherwise)."""
        return self.labels[_language(language)]

    # -- the patient's record, read by a professional ---------------------------------------
    PATIENT_SEARCH = (
        "patient.search",
        "Recherche de patients",
        "Patientensuche",
        "Patient search",
        False,
    )
    ACCESS_GRANT = (
        "access.grant",
        "Ouverture d'un accès au dossier",
        "Freigabe eines Zugriffs auf die Akte",
        "Access to the record granted",
        True,
    )
    ACCESS_EMERGENCY = (
        "access.emergency",
        "Accès en urgence au dossier",
        "Notfallzugriff auf die Akte",
        "Emergency access to the record",
        True,
    )
    ACCESS_REVOKE = (
        "access.revoke",
        "Retrait d'un accès au dossier",
        "Entzug eines Zugriffs auf die Akte",
        "Access to the record revoked",
        True,
    )
    ACCESS_DIALOG = (
        "access.dialog",
        "Demande d'accès au dossier",
        "Anfrage eines Zugriffs auf die Akte",
        "Request for access to the record",
        True,
    )
    PATIENT_READ = (
        "patient.read",
        "Consultation de l'identité du patient",
        "Einsicht in die Identität des Patienten",
        "Patient identity read",
        True,
    )
    RECORD_OPEN = (
        "record.open",
        "Ouverture du dossier",
        "Öffnen der Akte",
        "Record opened",
        True,
    )
    RECORD_VIEW = (
        "record.view",
        "Consultation du dossier (filtre ou onglet)",
        "Ansicht der Akte (Filter oder Reiter)",
        "Record viewed (filter or tab)",
        True,
    )
    RECORD_SEARCH = (
        "record.search",
        "Recherche dans le dossier",
        "Suche in der Akte",
        "Search within the record",
        True,
    )
    DOCUMENT_SEARCH = (
        "document.search",
        "Recherche de documents du dossier",
        "Suche nach Dokumenten der Akte",
        "Search of the record's documents",
        True,
    )
    DOCUMENT_READ = (
        "document.read",
        "Consultation d'un document",
        "Einsicht in ein Dokument",
        "Document read",
        True,
    )
    DOCUMENT_CONTENT = (
        "document.content",
        "Téléchargement du contenu d'un document",
        "Abruf des Inhalts eines Dokuments",
        "Document content downloaded",
        True,
    )
    DOCUMENT_SUBMIT = (
        "document.submit",
        "Dépôt d'un document dans le dossier",
        "Ablage eines Dokuments in der Akte",
        "Document added to the record",
        True,
    )
    # -- dispensing --------------------------------------------------------------------------
    PRESCRIPTION_SEARCH = (
        "prescription.search",
        "Recherche des prescriptions du dossier",
        "Suche nach Verordnungen der Akte",
        "Search of the record's prescriptions",
        True,
    )
    PRESCRIPTION_DISPENSE = (
        "prescription.dispense",
        "Dispensation d'une prescription",
        "Abgabe eines verordneten Arzneimittels",
        "Prescription dispensed",
        True,
    )
    DISPENSATION_WITHDRAW = (
        "dispensation.withdraw",
        "Retrait d'une dispensation",
        "Rücknahme einer Abgabe",
        "Dispensation withdrawn",
        True,
    )
    DISPENSATION_CERTIFY = (
        "dispensation.certify",
        "Émission d'une copie certifiée conforme",
        "Ausstellung einer beglaubigten Kopie",
        "Certified copy issued",
        True,
    )
    DISPENSATION_COPY = (
        "dispensation.copy",
        "Téléchargement d'une copie certifiée conforme",
        "Abruf einer beglaubigten Kopie",
        "Certified copy downloaded",
        True,
    )
    DISPENSATION_VERIFY = (
        "dispensation.verify",
        "Vérification d'une copie certifiée conforme",
        "Prüfung einer beglaubigten Kopie",
        "Certified copy verified",
        True,
    )
    # -- the patient's choices and the patient index -------------------------------------------
    PATIENT_BLOCK = (
        "patient.block",
        "Refus d'un professionnel par le patient",
        "Sperrung einer Fachperson durch den Patienten",
        "Professional blocked by the patient",
        True,
    )
    PATIENT_UNBLOCK = (
        "patient.unblock",
        "Levée du refus d'un professionnel",
        "Aufhebung der Sperrung einer Fachperson",
        "Block of a professional lifted",
        True,
    )
    PATIENT_CREATE = (
        "patient.create",
        "Inscription du patient",
        "Aufnahme des Patienten",
        "Patient registered",
        True,
    )
    PATIENT_UPDATE = (
        "patient.update",
        "Mise à jour des données administratives du patient",
        "Änderung der Verwaltungsdaten des Patienten",
        "Patient's administrative data updated",
        True,
    )
    # -- the patient's own portal (« Espace patient ») ------------------------------------------
    ESPACE_LETTER_ISSUE = (
        "espace.letter.issue",
        "Émission d'un courrier d'activation de l'espace patient",
        "Ausstellung eines Aktivierungsschreibens für den Patientenbereich",
        "Patient portal activation letter issued",
        True,
    )
    ESPACE_ACTIVATION_CODE = (
        "espace.activation.code",
        "Activation de l'espace patient : code du courrier",
        "Aktivierung des Patientenbereichs: Code des Schreibens",
        "Patient portal activation: letter code",
        True,
    )
    ESPACE_ACTIVATION_CERTIFICATE = (
        "espace.activation.certificate",
        "Activation de l'espace patient : carte eID ou produit LuxTrust",
        "Aktivierung des Patientenbereichs: eID-Karte oder LuxTrust-Produkt",
        "Patient portal activation: eID card or LuxTrust product",
        True,
    )
    ESPACE_ACTIVATION_SECURITY = (
        "espace.activation.security",
        "Activation de l'espace patient : sécurisation du compte",
        "Aktivierung des Patientenbereichs: Absicherung des Kontos",
        "Patient portal activation: account secured",
        True,
    )
    ESPACE_ACTIVATION_COMPLETE = (
        "espace.activation.complete",
        "Activation de l'espace patient terminée",
        "Aktivierung des Patientenbereichs abgeschlossen",
        "Patient portal activated",
        True,
    )
    ESPACE_RECORD_VIEW = (
        "espace.record.view",
        "Consultation de son dossier par le patient",
        "Einsicht des Patienten in seine Akte",
        "The patient viewed their record",
        True,
    )
    ESPACE_DOCUMENT_READ = (
        "espace.document.read",
        "Lecture d'un document par le patient",
        "Lesen eines Dokuments durch den Patienten",
        "The patient read a document",
        True,
    )
    ESPACE_JOURNAL_READ = (
        "espace.journal.read",
        "Consultation du journal d'accès par le patient",
        "Einsicht des Patienten in das Zugriffsprotokoll",
        "The patient viewed the access journal",
        True,
    )
    ESPACE_NOT_FOUND = (
        "espace.not_found",
        "Demande refusée dans l'espace patient (introuvable)",
        "Abgelehnte Anfrage im Patientenbereich (nicht gefunden)",
        "Patient portal request refused (not found)",
        True,
    )
    ESPACE_PROFESSIONAL_SEARCH = (
        "espace.professional.search",
        "Recherche d'un professionnel par le patient",
        "Suche einer Fachperson durch den Patienten",
        "The patient searched for a professional",
        True,
    )
    ESPACE_REPRESENTATIVE_ADD = (
        "espace.representative.add",
        "Enregistrement d'un représentant légal",
        "Registrierung eines gesetzlichen Vertreters",
        "Legal representative registered",
        True,
    )
    ESPACE_ACT_FOR = (
        "espace.act_for",
        "Un représentant légal agit pour le patient",
        "Ein gesetzlicher Vertreter handelt für den Patienten",
        "A legal representative acts for the patient",
        True,
    )
    ESPACE_CERTIFICATE_BIND = (
        "espace.certificate.bind",
        "Association d'un certificat à l'espace patient",
        "Verknüpfung eines Zertifikats mit dem Patientenbereich",
        "Certificate bound to the patient area",
        True,
    )
    ESPACE_NOTIFY = (
        "espace.notify",
        "Notification d'accès envoyée au patient",
        "Zugriffsbenachrichtigung an den Patienten gesendet",
        "Access notification sent to the patient",
        True,
    )
    DOCUMENT_HIDE = (
        "document.hide",
        "Document masqué par le patient",
        "Dokument vom Patienten verborgen",
        "Document hidden by the patient",
        True,
    )
    DOCUMENT_SHOW = (
        "document.show",
        "Document de nouveau visible",
        "Dokument wieder sichtbar",
        "Document visible again",
        True,
    )
    RECORD_OPPOSE = (
        "record.oppose",
        "Fermeture du dossier par le patient (opposition)",
        "Schließung der Akte durch den Patienten (Widerspruch)",
        "Record closed by the patient (opposition)",
        True,
    )
    RECORD_REOPEN = (
        "record.reopen",
        "Réouverture du dossier par le patient",
        "Wiedereröffnung der Akte durch den Patienten",
        "Record reopened by the patient",
        True,
    )
    ESPACE_NOTIFICATIONS = (
        "espace.notifications",
        "Choix des notifications d'accès",
        "Wahl der Zugriffsbenachrichtigungen",
        "Access notifications chosen",
        True,
    )
    # -- operators (agency, helpdesk) ----------------------------------------------------------
    PATIENT_ADMIN_READ = (
        "patient.admin.read",
        "Consultation par l'Agence (fiche patient)",
        "Einsicht durch die Agentur (Patientendaten)",
        "Viewed by the Agency (patient page)",
        True,
    )
    PATIENT_ADMIN_LIST = (
        "patient.admin.read.list",
        "Liste de patients consultée par l'Agence",
        "Patientenliste von der Agentur eingesehen",
        "Patient list viewed by the Agency",
        False,
    )
    ACCESS_ADMIN_READ = (
        "access.admin.read",
        "Consultation par l'Agence (accès au dossier)",
        "Einsicht durch die Agentur (Zugriffe auf die Akte)",
        "Viewed by the Agency (record access)",
        True,
    )
    ACCESS_ADMIN_LIST = (
        "access.admin.read.list",
        "Liste d'accès consultée par l'Agence",
        "Zugriffsliste von der Agentur eingesehen",
        "Access list viewed by the Agency",
        False,
    )
    JOURNAL_EXPORT = (
        "journal.export",
        "Export du journal d'accès",
        "Export des Zugriffsprotokolls",
        "Access journal exported",
        True,
    )
    # -- professional accounts -----------------------------------------------------------------
    PROFESSIONAL_REGISTER = (
        "accounts.professional.register",
        "Enregistrement d'un professionnel",
        "Registrierung einer Fachperson",
        "Professional registered",
        False,
    )
    PROFESSIONAL_STATE = (
        "accounts.professional.state",
        "Changement d'état d'un compte professionnel",
        "Statusänderung eines Fachpersonenkontos",
        "Professional account state changed",
        False,
    )
    ACTIVATION_LETTER_ISSUE = (
        "accounts.activation_letter.issue",
        "Émission d'une lettre d'activation",
        "Ausstellung eines Aktivierungsschreibens",
        "Activation letter issued",
        False,
    )
    ACTIVATION_LETTER_BLOCK = (
        "accounts.activation_letter.block",
        "Blocage d'une lettre d'activation",
        "Sperrung eines Aktivierungsschreibens",
        "Activation letter blocked",
        False,
    )
    ACTIVATION_TERMS = (
        "accounts.activation.terms",
        "Activation : acceptation des conditions",
        "Aktivierung: Annahme der Bedingungen",
        "Activation: terms accepted",
        False,
    )
    ACTIVATION_BACK = (
        "accounts.activation.back",
        "Activation : retour à l'étape précédente",
        "Aktivierung: zurück zum vorigen Schritt",
        "Activation: back one step",
        False,
    )
    ACTIVATION_CERTIFICATE = (
        "accounts.activation.certificate",
        "Activation : certificat",
        "Aktivierung: Zertifikat",
        "Activation: certificate",
        False,
    )
    ACTIVATION_CERTIFICATE_MISMATCH = (
        "accounts.activation.certificate_mismatch",
        "Activation : certificat d'un autre titulaire",
        "Aktivierung: Zertifikat einer anderen Person",
        "Activation: certificate of someone else",
        False,
    )
    ACTIVATION_CODE = (
        "accounts.activation.code",
        "Activation : code d'activation",
        "Aktivierung: Aktivierungscode",
        "Activation: activation code",
        False,
    )
    ACTIVATION_INFORMATION = (
        "accounts.activation.information",
        "Activation : vérification des informations",
        "Aktivierung: Prüfung der Angaben",
        "Activation: details checked",
        False,
    )
    ACTIVATION_SECURITY = (
        "accounts.activation.security",
        "Activation : moyen de sécurité",
        "Aktivierung: Sicherheitsmittel",
        "Activation: security factor",
        False,
    )
    ACTIVATION_COMPLETE = (
        "accounts.activation.complete",
        "Activation du compte terminée",
        "Aktivierung des Kontos abgeschlossen",
        "Account activation completed",
        False,
    )
    LOGIN_PASSWORD = (
        "accounts.login.password",
        "Connexion : mot de passe",
        "Anmeldung: Passwort",
        "Login: password",
        False,
    )
    LOGIN_CODE = (
        "accounts.login.code",
        "Connexion : code à usage unique",
        "Anmeldung: Einmalcode",
        "Login: one-time code",
        False,
    )
    LOGIN_CERTIFICATE = (
        "accounts.login.certificate",
        "Connexion : certificat",
        "Anmeldung: Zertifikat",
        "Login: certificate",
        False,
    )
    LOGIN_LOCK = (
        "accounts.login.lock",
        "Verrouillage d'un compte après des échecs de connexion",
        "Sperrung eines Kontos nach Fehlanmeldungen",
        "Account locked after failed logins",
        False,
    )
    ADDRESS_LOCK = (
        "accounts.address.lock",
        "Verrouillage d'une adresse après des échecs de connexion",
        "Sperrung einer Adresse nach Fehlanmeldungen",
        "Address locked after failed logins",
        False,
    )
    ACTIVATION_DELAY = (
        "accounts.activation.delay",
        "Activation : délai imposé après des échecs",
        "Aktivierung: Wartezeit nach Fehlversuchen",
        "Activation: delay after failed attempts",
        False,
    )
    LOGIN_DELAY = (
        "accounts.login.delay",
        "Connexion : délai imposé après des échecs",
        "Anmeldung: Wartezeit nach Fehlversuchen",
        "Login: delay after failed attempts",
        False,
    )
    ATTACK_NOTIFY = (
        "accounts.attack.notify",
        "Alerte envoyée après des tentatives de connexion suspectes",
        "Warnung nach verdächtigen Anmeldeversuchen",
        "Alert sent after suspicious login attempts",
        False,
    )
    LOGIN_UNLOCK = (
        "accounts.login.unlock",
        "Déverrouillage d'un compte",
        "Entsperrung eines Kontos",
        "Account unlocked",
        False,
    )
    THROTTLE_LIFT = (
        "accounts.throttle.lift",
        "Levée d'une limite de connexion d'un réseau",
        "Aufhebung einer Anmeldebegrenzung eines Netzwerks",
        "Network login limit lifted",
        False,
    )
    THROTTLE_PURGE = (
        "accounts.throttle.purge",
        "Suppression des compteurs de connexion périmés",
        "Löschung veralteter Anmeldezähler",
        "Stale login counters deleted",
        False,
    )
    LOGOUT = (
        "accounts.logout",
        "Déconnexion",
        "Abmeldung",
        "Logout",
        False,
    )
    OTP_SEND = (
        "accounts.otp.send",
        "Envoi d'un code à usage unique",
        "Versand eines Einmalcodes",
        "One-time code sent",
        False,
    )
    PASSWORD_CHANGE = (
        "accounts.password.change",
        "Changement de mot de passe",
        "Passwortänderung",
        "Password changed",
        False,
    )
    CERTIFICATE_PRESENT = (
        "accounts.certificate.present",
        "Présentation d'un certificat",
        "Vorlage eines Zertifikats",
        "Certificate presented",
        False,
    )
    CERTIFICATE_TOKEN = (
        "accounts.certificate.token",
        "Utilisation d'un jeton de certificat",
        "Verwendung eines Zertifikatstokens",
        "Certificate token used",
        False,
    )
    ACCOUNT_ADMIN_READ = (
        "accounts.admin.read",
        "Consultation d'un compte professionnel par l'Agence",
        "Einsicht in ein Fachpersonenkonto durch die Agentur",
        "Professional account viewed by the Agency",
        False,
    )
    ACCOUNT_ADMIN_CHANGE = (
        "accounts.admin.change",
        "Modification d'un compte professionnel par l'Agence",
        "Änderung eines Fachpersonenkontos durch die Agentur",
        "Professional account changed by the Agency",
        False,
    )
    DEMO_ACTIVATE = (
        "accounts.demo.activate",
        "Activation d'un compte de démonstration",
        "Aktivierung eines Demokontos",
        "Demo account activated",
        False,
    )
    DEMO_CERTIFICATE = (
        "accounts.demo.certificate",
        "Certificat d'un compte de démonstration",
        "Zertifikat eines Demokontos",
        "Demo account certificate bound",
        False,
    )
    # -- the audit trail itself ----------------------------------------------------------------
    ANCHOR_REFUSED = (
        "audit.anchor_refused",
        "Signature du journal refusée",
        "Signierung des Protokolls verweigert",
        "Audit trail signing refused",
        False,
    )
    # -- the public transparency log --------------------------------------------------------------
    TLOG_WITNESS_REFUSED = (
        "tlog.witness_refused",
        "Point de contrôle du journal public refusé par le témoin",
        "Prüfpunkt des öffentlichen Protokolls vom Zeugen abgelehnt",
        "Public log checkpoint refused by the witness",
        False,
    )
    # -- the platform's operations ---------------------------------------------------------------
    BACKUP_CREATE = (
        "platform.backup",
        "Sauvegarde de la plateforme (base de données, documents, journal d'audit)",
        "Sicherung der Plattform (Datenbank, Dokumente, Protokoll)",
        "Platform backed up (database, documents, audit trail)",
        False,
    )
    SIMULATION_LOAD = (
        "platform.simulation",
        "Chargement d'un jeu de données synthétique (simulation nationale)",
        "Laden eines synthetischen Datensatzes (nationale Simulation)",
        "Synthetic data set loaded (national simulation)",
        False,
    )
    STORAGE_INTEGRITY = (
        "storage.integrity",
        "Fichier stocké refusé : son contenu ne correspond pas à son empreinte SHA-256",
        "Gespeicherte Datei abgelehnt: Inhalt entspricht nicht ihrem SHA-256-Fingerabdruck",
        "Stored file refused: its content does not match its SHA-256",
        False,
    )
    # -- software clients of the FHIR API ---------------------------------------------------
    API_CLIENT_REGISTER = (
        "api.client.register",
        "Enregistrement d'un logiciel client de l'API",
        "Registrierung einer Client-Software der API",
        "API software client registered",
        False,
    )
    API_AUTHORISE = (
        "api.authorise",
        "Autorisation d'un logiciel à agir au nom du professionnel",
        "Ermächtigung einer Software, im Namen der Fachperson zu handeln",
        "Software authorised to act for the professional",
        False,
    )
    API_TOKEN = (
        "api.token",
        "Délivrance d'un jeton d'accès à un logiciel",
        "Ausstellung eines Zugriffstokens an eine Software",
        "Access token issued to software",
        False,
    )
    API_REVOKE = (
        "api.revoke",
        "Retrait de l'autorisation d'un logiciel",
        "Widerruf der Ermächtigung einer Software",
        "Software authorisation revoked",
        False,
    )
    AUDIT_READ = (
        "audit.read",
        "Consultation par un professionnel des traces de ses propres actions",
        "Einsicht einer Fachperson in die Protokolle ihrer eigenen Handlungen",
        "A professional read the trail of their own actions",
        False,
    )
    API_REQUEST = (
        "api.request",
        "Requête d'un logiciel sur l'API",
        "Anfrage einer Software an die API",
        "Software request to the API",
        False,
    )
