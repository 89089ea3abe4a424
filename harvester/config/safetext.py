"""What of a config file's text may appear in a message: names yes, anything secret-shaped no.

Every error about a config quotes what the user wrote when that helps, except where it may be
a credential pasted in the wrong place. These rules sit at the bottom of the package because
the YAML reader (duplicate keys), the schema (``*_env`` and ``cloud`` must be names), the error
wording (unknown keys, masking) and the credential lookup all apply the same ones.
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 64  # longer than any variable or clouds.yaml entry name a person types

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLOUD_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_SEGMENT_RE = re.compile(r"[_.-]+")


def looks_like_secret(text: str) -> bool:
    """Whether a value meant to be a *name* looks like a credential pasted in its place.

    Names people give variables and clouds.yaml entries are short words joined by ``_``, ``.``
    or ``-`` (``OS_SECRET_KEY``, ``otc-prod``). Keys and passwords are long runs without a
    separator that mix digits into letters (an OTC AK is 20 upper-case letters and digits, an
    SK 40 mixed-case ones) or mix cases and digits in one short word (``Summer2024``).
    """
    if len(text) > MAX_NAME_LENGTH:
        return True
    for segment in _SEGMENT_RE.split(text):
        digits = any(c.isdigit() for c in segment)
        if len(segment) >= 24 or (len(segment) >= 16 and digits):
            return True
        if (
            len(segment) >= 8
            and digits
            and any(c.islower() for c in segment)
            and any(c.isupper() for c in segment)
        ):
            return True
    return False


def plausible_env_name(text: str) -> bool:
    return bool(_ENV_NAME_RE.fullmatch(text)) and not looks_like_secret(text)


def plausible_cloud_name(text: str) -> bool:
    return bool(_CLOUD_NAME_RE.fullmatch(text)) and not looks_like_secret(text)


def show(value: object) -> str:
    """A short, safe rendering of an offending scalar for "(got ...)"; containers are elided."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, bool | int | float) or value is None:
        return "null" if value is None else repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
