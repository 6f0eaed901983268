"""Commands as the README gives them, so that tests run the README's words and the two cannot drift."""

from __future__ import annotations

import re
import shlex

from helpers.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def readme_commands(anchor: str) -> list[list[str]]:
    """The commands of the first bash block after ``anchor`` in the README, split as a shell would.

    Comments and empty lines are dropped; ``export`` lines are kept, for the caller to check or skip.
    """
    text = README.read_text()
    start = text.find(anchor)
    assert start >= 0, f"README.md has no {anchor!r}"
    block = BASH_BLOCK.search(text, start)
    assert block, f"README.md has no bash block after {anchor!r}"
    commands = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    return [command for command in commands if command]
