"""The ``esante`` command: Django's manage.py for this project."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "esante.settings")
    if len(sys.argv) > 1 and sys.argv[1] == "demo":
        # The demo may generate its own secret key into the data directory.
        os.environ.setdefault("ESANTE_DEMO", "1")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"esante: configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
