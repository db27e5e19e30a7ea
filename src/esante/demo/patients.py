"""The demo data set: the guide's patient, PIG Peppa, and synthetic patients typical of Luxembourg.

Deterministic (fixed seed) and idempotent: loading it twice changes nothing.
"""

import datetime
import random
from collections.abc import Iterator
from typing import Any

from esante.patients.matricule import make_patient_matricule

PEPPA: dict[str, Any] = {
    "matricule": "1904112000166",
    "birth_name": "PIG",
    "usage_name": "",
    "first_names": "Peppa",
    "birth_date": datetime.date(1904, 11, 20),
    "sex": "F",
    "taux": 100,
    "dossier_number": "1664927202",
    "platform_identifier": "1700000151",
    "dossier_state": "active",
}

# Family names by origin, as met in Luxembourg's population.
_FAMILY = {
    "lu": [
        "Schmit",
        "Muller",
        "Weber",
        "Wagner",
        "Hoffmann",
        "Thill",
        "Kremer",
        "Schroeder",
        "Reuter",
        "Klein",
        "Hansen",
        "Faber",
        "Krier",
        "Majerus",
        "Welter",
        "Schiltz",
        "Steichen",
        "Kieffer",
        "Meyer",
        "Goergen",
        "Lentz",
        "Ries",
        "Wirtz",
        "Bernard",
        "Feller",
        "Jacoby",
        "Kayser",
    ],
    "fr": [
        "Dupont",
        "Lefèvre",
        "Martin",
        "Bernard",
        "Dubois",
        "Moreau",
        "Laurent",
        "Girard",
        "Lambert",
        "Fontaine",
        "Rousseau",
        "Leroy",
        "Müller-Dupont",
        "Chevalier",
        "François",
        "Gauthier",
        "Noël",
    ],
    "pt": [
        "Da Silva",
        "Dos Santos",
        "Pereira",
        "Ferreira",
        "Gonçalves",
        "Rodrigues",
        "Fernandes",
        "Martins",
        "Lopes",
        "Carvalho",
        "Gomes",
        "Ribeiro",
        "Sousa",
        "Conceição",
        "Simões",
        "Araújo",
    ],
    "de": [
        "Müller",
        "Schmitt",
        "Schneider",
        "Fischer",
        "Weiß",
        "Becker",
        "Schäfer",
        "Koch",
        "Bauer",
        "Richter",
        "Wolf",
        "Schröder",
        "Neumann",
        "Zimmermann",
        "Krüger",
        "Hartmann",
    ],
    "it": [
        "Rossi",
        "Russo",
        "Ferrari",
        "Esposito",
        "Bianchi",
        "Romano",
        "Colombo",
        "Ricci",
        "Marino",
        "Greco",
        "Bruno",
        "Gallo",
        "Conti",
        "De Luca",
        "D'Angelo",
        "Lombardi",
    ],
}
_GIVEN_F = {
    "lu": ["Léa", "Emma", "Zoé", "Mia", "Anne", "Marie", "Claudine", "Josiane", "Nathalie", "Martine"],
    "fr": ["Camille", "Chloé", "Élodie", "Manon", "Julie", "Hélène", "Amélie", "Sophie", "Inès"],
    "pt": ["Ana", "Maria", "Joana", "Inês", "Beatriz", "Mariana", "Conceição", "Fátima", "Sofia"],
    "de": ["Anna", "Lena", "Jana", "Katharina", "Ursula", "Sabine", "Gisela", "Birgit"],
    "it": ["Giulia", "Francesca", "Chiara", "Alessia", "Federica", "Martina", "Silvia"],
}
_GIVEN_M = {
    "lu": ["Luc", "Jean", "Marc", "Paul", "Tom", "Ben", "Gilles", "Yves", "Jos", "Romain", "Max"],
    "fr": ["Louis", "Hugo", "Théo", "Jérôme", "François", "Rémi", "Étienne", "Noël", "Gaël"],
    "pt": ["João", "José", "António", "Luís", "Tiago", "Rui", "Gonçalo", "Sérgio", "Fábio"],
    "de": ["Jürgen", "Jörg", "Stefan", "Lukas", "Tobias", "Matthias", "Uwe", "Günter"],
    "it": ["Luca", "Marco", "Giuseppe", "Francesco", "Alessandro", "Nicolò", "Andrea", "Davide"],
}
_ORIGINS = ["lu"] * 5 + ["fr"] * 2 + ["pt"] * 3 + ["de"] + ["it"]


def synthetic_patients(count: int = 5000, seed: int = 20201118) -> Iterator[dict[str, Any]]:
    """``count`` synthetic patients with valid matricules, distinct and stable across runs."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not a secret
    used: set[str] = {PEPPA["matricule"]}
    produced = 0
    while produced < count:
        origin = rng.choice(_ORIGINS)
        sex = rng.choice("FM")
        birth = datetime.date(1930, 1, 1) + datetime.timedelta(days=rng.randrange(0, 33_000))
        matricule = make_patient_matricule(birth, rng.randrange(0, 1000))
        if matricule in used:
            continue
        used.add(matricule)
        family = rng.choice(_FAMILY[origin])
        given_pool = _GIVEN_F[origin] if sex == "F" else _GIVEN_M[origin]
        given = rng.choice(given_pool)
        if rng.random() < 0.2:
            given = f"{given} {rng.choice(given_pool)}"
        usage = ""
        if sex == "F" and birth.year < 2000 and rng.random() < 0.3:
            usage = rng.choice(_FAMILY[rng.choice(_ORIGINS)])
        produced += 1
        yield {
            "matricule": matricule,
            "birth_name": family.upper() if rng.random() < 0.5 else family,
            "usage_name": usage,
            "first_names": given,
            "birth_date": birth,
            "sex": sex,
            "taux": rng.choice([40, 80, 80, 80, 100]),
            "dossier_number": f"{rng.randrange(10**9, 10**10)}",
            "platform_identifier": f"18{produced:08d}",
            "dossier_state": "active" if rng.random() > 0.01 else "closed",
        }
