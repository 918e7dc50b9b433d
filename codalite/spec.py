"""Pure parsing of what users type, in CodaLab's syntax: uuids, names, targets, sizes, durations."""

import re
import uuid as uuidlib
from dataclasses import dataclass

from .errors import UsageError

# \Z, not $: `$` also matches before a trailing newline, which would let 'raw\n' pass as a name
UUID_RE = re.compile(r"^0x[0-9a-f]{32}\Z")
UUID_PREFIX_RE = re.compile(r"^0x[0-9a-f]{1,32}\Z")
NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.\-]*\Z")
KEY_RE = re.compile(r"^[a-zA-Z0-9_\-.]+(/[a-zA-Z0-9_\-.]+)*\Z")
# bundle spec: uuid (prefix), name, name^N, ^, ^N
SPEC_RE = re.compile(r"^(?P<base>0x[0-9a-f]{1,32}|[a-zA-Z_][a-zA-Z0-9_.\-]*)?(?:\^(?P<n>\d*))?\Z")
NAME_MAX = 255  # CodaLab's limit on names (a name is also a file name in `cl download`)
INDEX_MAX = 2**62  # ^N beyond this does not fit SQLite's 64-bit OFFSET

SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
MAX_NUMBER = 2**62  # sizes (bytes) and durations (seconds) beyond this are typos, and overflow SQLite


def new_uuid():
    return "0x" + uuidlib.uuid4().hex


def check_name(name):
    if name and len(name) > NAME_MAX:
        raise UsageError(f"invalid bundle name {name[:20]!r}...: longer than {NAME_MAX} characters")
    if not NAME_RE.match(name or ""):
        raise UsageError(
            f"invalid bundle name {name!r}: use letters, digits, _ . - and start with a letter or _"
        )
    return name


def parse_size(text):
    """'2g' -> bytes. CodaLab's units: k, m, g, t (powers of 1024); a bare number is bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtb]?)b?\s*", str(text).lower())
    if not m:
        raise UsageError(f"malformed size {text!r}: use a number with a unit, like 500m or 2g")
    n = float(m.group(1)) * SIZE_UNITS[m.group(2)]
    if not n <= MAX_NUMBER:  # also inf, from hundreds of digits
        raise UsageError(f"size {_short(text)} is too large")
    return int(n)


def parse_duration(text):
    """'3h' -> seconds. Units s, m, h, d, w, y (CodaLab's); a bare number is seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdwy]?)\s*", str(text).lower())
    if not m:
        raise UsageError(f"malformed duration {text!r}: use a number with a unit, like 90s, 30m or 2h")
    n = float(m.group(1)) * DURATION_UNITS[m.group(2)]
    if not n <= MAX_NUMBER:
        raise UsageError(f"duration {_short(text)} is too large")
    return n


def _short(text):
    text = str(text)
    return repr(text) if len(text) <= 30 else f"{text[:12]!r}... ({len(text)} characters)"


def format_size(n):
    if n is None:
        return ""
    for unit in ("", "k", "m", "g", "t"):
        if abs(n) < 1024 or unit == "t":
            return f"{n:.0f}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1024.0


def format_duration(seconds):
    if seconds is None:
        return ""
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{s}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m}m"
    d, h = divmod(h, 24)
    return f"{d}d{h}h"


@dataclass(frozen=True)
class BundleSpec:
    """A reference to a bundle as typed: uuid or prefix, name, name^N, ^N (N-th last)."""

    base: str  # uuid prefix or name; '' for ^N
    index: int  # 1 = the newest match

    @property
    def is_uuid(self):
        return bool(UUID_PREFIX_RE.match(self.base))


def parse_bundle_spec(text):
    m = SPEC_RE.match(text or "")
    if not m or (not m.group("base") and m.group("n") is None):
        raise UsageError(
            f"malformed bundle reference {text!r}: use a uuid (prefix), a name, name^N or ^N"
        )
    n = int(m.group("n")) if m.group("n") else 1
    if n < 1:
        raise UsageError(f"bad bundle reference {text!r}: ^N counts from 1 (^1 or ^ is the newest)")
    if n > INDEX_MAX:
        raise UsageError(f"bad bundle reference {_short(text)}: ^N is too large")
    return BundleSpec(m.group("base") or "", n)


@dataclass(frozen=True)
class Target:
    """`bundle[/subpath]`: a path inside a bundle."""

    spec: BundleSpec
    subpath: str  # '' for the whole bundle
    text: str


def parse_target(text):
    bundle, _, subpath = (text or "").partition("/")
    subpath = subpath.strip("/")
    if any(part in ("..",) for part in subpath.split("/")):
        raise UsageError(f"malformed target {text!r}: '..' is not allowed in a path inside a bundle")
    return Target(parse_bundle_spec(bundle), subpath, text)


def parse_key_target(text):
    """Run/make dependency `key:target`; `:target` takes the key from the subpath's last part or the
    bundle's spec, as `cl run :src` does. Returns (key, Target)."""
    if ":" not in text:
        raise UsageError(f"malformed dependency {text!r}: use key:bundle[/path] or :bundle")
    key, _, rest = text.partition(":")
    target = parse_target(rest)
    if not key:
        key = target.subpath.rsplit("/", 1)[-1] if target.subpath else target.spec.base
    if not KEY_RE.match(key) or ".." in key.split("/"):
        raise UsageError(
            f"invalid dependency key {key!r} in {text!r}: use letters, digits, _ - . and /"
        )
    return key, target


def looks_like_dependency(text):
    """Whether a positional argument of `run` is a dependency (key:target) rather than the command."""
    if " " in text or ":" not in text:
        return False
    key, _, rest = text.partition(":")
    return (not key or bool(KEY_RE.match(key))) and bool(rest) and bool(
        SPEC_RE.match(rest.partition("/")[0])
    )
