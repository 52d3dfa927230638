"""The `pip install` line for an optional extra that is missing, one that works anywhere.

`pip install 'signoff-client[langgraph]'` names the distribution, which no index has when
it was installed from a checkout; the extra's own requirements are on PyPI. They are read
from the installed distribution's metadata, so the hint cannot drift from pyproject.toml,
and installed with this interpreter's pip, which is the environment that lacks them even
when no virtualenv is activated.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import sys


def extra_requirements(distribution: str, extra: str) -> list[str]:
    """The requirements `distribution[extra]` adds (markers dropped), or [] if unknown."""
    try:
        requires = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    marker = re.compile(rf"""\bextra\s*==\s*["']{re.escape(extra)}["']""")
    return [r.partition(";")[0].strip() for r in requires if marker.search(r.partition(";")[2])]


def install_hint(distribution: str, extra: str) -> str:
    """A shell command that installs what `distribution[extra]` adds into this environment."""
    packages = extra_requirements(distribution, extra) or [f"{distribution}[{extra}]"]
    return " ".join(
        [shlex.quote(sys.executable), "-m", "pip", "install", *map(shlex.quote, packages)]
    )
