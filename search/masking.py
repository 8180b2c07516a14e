"""Credentials stay in the process: every URL or text sedtune shows or stores goes through here first.

- `mask_url(url)`: the URL with its secrets replaced by `***`: the password
  of its user part (`postgresql://alice:***@host/db`, `s3://KEYID:***@bucket`),
  a user part that is itself the secret on http(s) (`https://***@host`), and
  the value of every query parameter named like a secret (`password`,
  `secret_access_key`, `token`, `sig` of an Azure SAS, `X-Amz-Signature`,
  ...). A URL without secrets comes back unchanged.
- `mask_text(text)`: every URL in `text` masked, and every secret this
  process was given (`remember`) replaced wherever it appears -- also
  outside a URL, e.g. in a driver's error message, raw or percent-decoded.
- `remember(url)`: note the secrets of a URL given at run time and return
  its masked form; `reveal(masked)` gives the URL back for connecting: the
  full one when this process was given it, else the URL without its
  secrets (`postgresql://alice@host/db`), with which the database library
  finds the password itself (PostgreSQL: `PGPASSWORD`, `PGPASSFILE`,
  `~/.pgpass`).

What was remembered lives in this process only (module state, like a
logging filter's): never in a file, a pickle or a child's environment.
"""

from __future__ import annotations

import re
import sys
import traceback
from types import TracebackType
from urllib.parse import unquote

MASK = "***"

#: a URL in free text: scheme://, then anything up to white space or a quote / bracket
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
#: scheme://user:password@ -- the password runs to the last '@' before the host (SQLAlchemy's reading)
_USER_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):(?P<password>[^@\s]*)@")
#: http(s)://TOKEN@host: a user part without a password is a token on these schemes
_USER_ONLY = re.compile(r"^(?P<head>https?://)(?P<user>[^:/?#@\s]+)@", re.IGNORECASE)
#: a query parameter whose name says it holds a secret
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:[\w.\-]*?(?:pass|pwd|secret|token|key|sig|signature|credential|auth)[\w.\-]*))=(?P<value>[^&;#\s]*)",
    re.IGNORECASE,
)
#: shorter secrets are not replaced as free text (too many false hits)
MIN_SECRET_LENGTH = 4

_full_urls: dict[str, str] = {}  # masked URL -> the URL given at run time
_secrets: set[str] = set()  # every secret value given at run time, raw and percent-decoded


def secrets_of(url: str) -> list[str]:
    """The secret values in `url`: its password, a token user part, secret query values (raw and decoded)."""
    found: list[str] = []
    match = _USER_PASSWORD.match(url)
    if match and match.group("password") and match.group("password") != MASK:
        found.append(match.group("password"))
    else:
        token = _USER_ONLY.match(url)
        if token and token.group("user") != MASK:
            found.append(token.group("user"))
    found += [m.group("value") for m in _SECRET_PARAM.finditer(url) if m.group("value") not in ("", MASK)]
    return sorted({v for s in found for v in (s, unquote(s)) if v}, key=len, reverse=True)


def mask_url(url: str) -> str:
    """`url` with its password, token user part and secret query values replaced by `***`."""
    masked = _USER_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@" if m.group("password") else m.group(0), url)
    if masked == url:
        masked = _USER_ONLY.sub(lambda m: f"{m.group('head')}{MASK}@", url)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('key')}={MASK}" if m.group("value") else m.group(0), masked)


def mask_text(text: str) -> str:
    """`text` with every URL masked and every remembered secret replaced by `***`."""
    text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def remember(url: str) -> str:
    """Keep the secrets of `url` (given at run time) in this process; its masked form, safe to show and store."""
    masked = mask_url(url)
    if masked != url:
        _full_urls[masked] = url
        _secrets.update(s for s in secrets_of(url) if len(s) >= MIN_SECRET_LENGTH)
    return masked


def without_secrets(url: str) -> str:
    """`url` (full or masked) with no password, token user part or secret query parameter at all."""
    url = _USER_PASSWORD.sub(lambda m: f"{m.group('head')}@", url)
    url = _USER_ONLY.sub(lambda m: m.group("head"), url)
    url = _SECRET_PARAM.sub(lambda m: m.group("key")[0], url)
    url = re.sub(r"[&;]{2,}", "&", re.sub(r"\?[&;]+", "?", url))
    return re.sub(r"[?&;]+$", "", url)


def reveal(masked: str) -> str:
    """The URL to connect with: the full one this process was given, else `without_secrets(masked)`."""
    return _full_urls.get(masked) or _full_urls.get(mask_url(masked)) or without_secrets(masked)


def has_secret(url: str) -> bool:
    return mask_url(url) != url


def _masked_excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(mask_text("".join(traceback.format_exception(kind, value, tb))))


def install_excepthook() -> None:
    """Print an uncaught exception's traceback with its secrets masked (a driver's error may quote a URL)."""
    sys.excepthook = _masked_excepthook
