"""``python -m headshare.scoring --write-readme-rules README.md``: regenerate the README's verdict rules."""

from __future__ import annotations

import argparse
from pathlib import Path

from headshare.scoring.readme import with_rules


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m headshare.scoring", description=__doc__)
    parser.add_argument(
        "--write-readme-rules",
        metavar="README",
        type=Path,
        required=True,
        help="rewrite the verdict-rules block of this markdown file from the quantity registry",
    )
    readme = parser.parse_args(argv).write_readme_rules
    readme.write_text(with_rules(readme.read_text()))


if __name__ == "__main__":
    main()
