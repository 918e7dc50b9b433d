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


PRINTF_FIELD_MAX = 1000  # a width or precision in a user's %-format: '%.1000000000f' builds a gigabyte per number
PRINTF_RE = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\d*)(?:\.(\d*))?")


def check_printf(fmt):
    """A %-format typed in a worksheet or paper table, refused where a width or precision would build more
    than PRINTF_FIELD_MAX characters per number; else returned."""
    for m in PRINTF_RE.finditer(fmt):
        if any(d and (len(d) > 4 or int(d) > PRINTF_FIELD_MAX) for d in m.groups()):
            raise UsageError(f"invalid format: {_short(fmt) if len(fmt) > 30 else fmt}: a width or precision "
                             f"over {PRINTF_FIELD_MAX:,}")
    return fmt


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
    if d < 365:
        return f"{d}d{h}h"
    y, d = divmod(d, 365)  # CodaLab's duration_str: 400 days is 1y35d
    return f"{y}y{d}d"


@dataclass(frozen=True)
class BundleSpec:
    """A reference to a bundle as typed: uuid or prefix, name, name^N, ^N (N-th last)."""

    base: str  # uuid prefix or name; '' for ^N
    index: int  # 1 = the newest match

    @property
    def is_uuid(self):
        return bool(UUID_PREFIX_RE.match(self.base))


# CodaLab's name pattern (spec_util.NAME_PATTERN_HISTORY_REGEX): `tr%`, `tr.*^2` pick the newest match
NAME_PATTERN_RE = re.compile(r"^[%*a-zA-Z0-9_.\-]+(\^\d*)?\Z")


def parse_bundle_spec(text):
    m = SPEC_RE.match(text or "")
    if not m and NAME_PATTERN_RE.match(text or "") and ("%" in text or "*" in text):
        raise UsageError(f"bundle name pattern {text!r} is not resolved by codalite (CodaLab takes its newest "
                         "match): give the bundle's name or uuid")
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
    """`[worksheet//]bundle[/subpath]`: a path inside a bundle, as CodaLab's target spec."""

    spec: BundleSpec
    subpath: str  # '' for the whole bundle
    text: str
    worksheet: str | None = None  # `ws//bundle`: the bundle spec is resolved on that worksheet


def split_key_target(text):
    """CodaLab's `[key:]target` split (cli_util.parse_key_target) -> (key, target text).

    key is '' for `:target`, None when there is no key (no `:`, or the first `:` starts an
    instance's `::`). A key never holds a `:`. An empty target is an error, as in CodaLab."""
    text = text or ""
    i = text.find(":")
    if i >= 0 and text[i + 1 : i + 2] != ":":
        key, value = text[:i], text[i + 1 :]
    else:
        key, value = None, text
    if value == "":
        raise UsageError(f"malformed dependency {text!r}: use key:bundle[/path] or :bundle")
    return key, value


def parse_target_spec(text):
    """CodaLab's target grammar `[instance::][worksheet//]bundle[/subpath]` (cli_util.parse_target_spec)
    -> (instance, worksheet, bundle, subpath), each None when absent; all None when text is empty.

    The instance ends at the first `::` and the worksheet at the first `//` after it (each only if
    something follows); the bundle spec is at least one character and ends at the next `/`; the
    subpath is the rest ('' after a trailing `/`)."""
    rest = text or ""
    instance = worksheet = None
    i = rest.find("::")
    if i >= 0 and i + 2 < len(rest):
        instance, rest = rest[:i], rest[i + 2 :]
    i = rest.find("//")
    if i >= 0 and i + 2 < len(rest):
        worksheet, rest = rest[:i], rest[i + 2 :]
    if not rest:
        return None, None, None, None
    j = rest.find("/", 1)  # the bundle spec has at least one character, even a '/'
    if j < 0:
        return instance, worksheet, rest, None
    return instance, worksheet, rest[:j], rest[j + 1 :]


def refuse_instance(text, instance):
    raise UsageError(
        f"{text!r} names a CodaLab instance ({instance}::), which codalite does not resolve: a target is a "
        "bundle in this store; bring it here with `codalite pull UUID --remote NAME` and use its uuid"
    )


def parse_target(text):
    instance, worksheet, bundle, subpath = parse_target_spec(text)
    if bundle is None:
        raise UsageError(f"malformed bundle reference {text!r}: a target is [worksheet//]bundle[/path]")
    if instance is not None:
        refuse_instance(text, instance)
    if worksheet is not None:
        check_worksheet_spec(worksheet, text)
    subpath = (subpath or "").strip("/")
    if any(part in ("..",) for part in subpath.split("/")):
        raise UsageError(f"malformed target {text!r}: '..' is not allowed in a path inside a bundle")
    return Target(parse_bundle_spec(bundle), subpath, text, worksheet)


def check_worksheet_spec(worksheet, text):
    if worksheet in ("", "/"):
        raise UsageError(f"{text!r}: an empty worksheet before // means your CodaLab home worksheet, and a "
                         "codalite store has none; name the worksheet (WS//bundle)")
    if not (UUID_PREFIX_RE.match(worksheet) or NAME_RE.match(worksheet)):
        raise UsageError(f"malformed worksheet {worksheet!r} in {text!r}: use a worksheet name or uuid (prefix)")


def parse_bundle_ref(text):
    """A bundle spec as commands take it: `[worksheet//]uuid|name|name^N|^N` -> (worksheet or None,
    BundleSpec). An instance (`alias::`) is refused; a path after the bundle is malformed."""
    instance, worksheet, bundle, subpath = parse_target_spec(text)
    if instance is not None:
        refuse_instance(text, instance)
    if worksheet is None or bundle is None:
        return None, parse_bundle_spec(text)
    check_worksheet_spec(worksheet, text)
    if subpath is not None:
        raise UsageError(f"malformed bundle reference {text!r}: a path inside a bundle is not allowed here")
    return worksheet, parse_bundle_spec(bundle)


def parse_key_target(text):
    """Run/make dependency `key:target`; `:target` takes its key as CodaLab's `cl run` does: the
    whole subpath when there is one (`:b/sub/path` -> `sub/path`), else the bundle's spec
    (`:ws//b` -> `b`; `:b^2` -> `b^2`, which CodaLab's server refuses as a key, and so does this).
    Returns (key, Target)."""
    key, value = split_key_target(text)
    if key is None:
        if "::" in (text or ""):
            parse_target(value)  # refuses the instance
        raise UsageError(f"malformed dependency {text!r}: use key:bundle[/path] or :bundle")
    target = parse_target(value)
    if key == "" and parse_target_spec(value)[3] == "":
        # `:b/`: CodaLab keys it by its (empty) subpath and its server refuses "child_path empty"
        raise UsageError(f"malformed dependency {text!r}: the key of :bundle/ is its empty path; write "
                         ":bundle or key:bundle/")
    if not key:
        key = target.subpath or parse_target_spec(value)[2]
    if not KEY_RE.match(key) or {".", ".."} & set(key.split("/")):  # `.` would mount over the run's own directory
        raise UsageError(
            f"invalid dependency key {key!r} in {text!r}: use letters, digits, _ - . and / (no '.' or '..' part)"
            + ("; name the key: key:TARGET" if text.startswith(":") else "")
        )
    return key, target


def looks_like_dependency(text):
    """Whether a positional argument of `run` is a dependency ([key]:[instance::][ws//]bundle[/path])
    rather than the command."""
    if " " in text or ":" not in text:
        return False
    try:
        key, value = split_key_target(text)
    except UsageError:
        return False
    if key is None and "::" not in text:
        return False
    if key and not KEY_RE.match(key):
        return False
    _, _, bundle, _ = parse_target_spec(value)
    return bundle is not None and bool(SPEC_RE.match(bundle) or (NAME_PATTERN_RE.match(bundle)
                                                              and ("%" in bundle or "*" in bundle)))


def desugar_command(targets, command):
    """`cl run`'s inline dependencies (CodaLab's cli_util.desugar_command, same rules):
    each `%target%`, `%key:target%` or `%:target%` in the command becomes a dependency and is
    replaced by its key. Without a key the target gets `bN` (N = its place among all
    dependencies), the same target reuses its key; `:target` keys by subpath, else bundle spec.
    Given dependencies come first, written `key:target`. Returns (['key:target', ...], command).

    As in CodaLab, scanning stops at the first `%` that does not open `%...%` (such as `%%`), and
    at a closing `%` followed by a line break that is not the command's last character."""
    out, value_of, key_of = [], {}, {}

    def add(text):
        if "\n" in text:  # CodaLab's target grammar stops at a line break; no target holds one
            raise UsageError(f"%...% in the command spans a line break ({text!r}): not a dependency")
        key, value = split_key_target(text)
        if key == "":
            _, _, bundle, subpath = parse_target_spec(value)
            key = subpath if subpath is not None else bundle
        elif key is None:
            key = key_of.get(value) or f"b{len(out) + 1}"
        key_of.setdefault(value, key)
        if key not in value_of:
            value_of[key] = value
            out.append(f"{key}:{value}")
        elif value_of[key] != value:
            raise UsageError(f"dependency key {key!r} is used twice, for {value_of[key]} and {value}; give each "
                             "dependency its own key")
        return key

    for t in targets:
        add(t)
    done = []
    while True:
        i = command.find("%")
        j = command.find("%", i + 1) if i >= 0 else -1
        if i < 0 or j <= i + 1:
            break
        after = command[j + 1 :]
        newline = after.find("\n")
        if newline >= 0 and newline != len(after) - 1:
            break
        done += [command[:i], add(command[i + 1 : j])]
        command = after[:-1] if newline >= 0 else after
    return out, "".join(done) + command
