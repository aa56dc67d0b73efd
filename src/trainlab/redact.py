"""Passwords out of what trainlab shows and stores: a URL's `user:password@` becomes `user:***@`
(SQLAlchemy's own `hide_password` form), a `password=` query value becomes `***`. The real URL is
used only to connect (tune/study.py open_storage); env.json, study.json, reports and every message
get the redacted form."""
from __future__ import annotations

import re
from typing import Any

# scheme://user:password@ (a password runs to the first "@", as SQLAlchemy parses it)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):([^@\s]+)@")
_QUERY = re.compile(r"([?&;](?:password|passwd|pwd)=)[^&;\s]+", re.IGNORECASE)
HIDDEN = "***"


def redact(text: str) -> str:
    """`text` with every URL password in it replaced by ***."""
    return _QUERY.sub(rf"\g<1>{HIDDEN}", _USERINFO.sub(rf"\g<1>:{HIDDEN}@", text))


def redact_all(value: Any) -> Any:
    """`value` (JSON-like: str, list, tuple, dict) with `redact` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_all(v) for v in value)
    return value
