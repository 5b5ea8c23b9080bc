"""``python -m ci_report`` = ``ci-report``."""

from .cli import main

if __name__ == "__main__":
    main()
