"""Text for LaTeX and back: escaping, the ± macro, a caption as plain text, bundle links; text for a
CSV that a spreadsheet opens."""

import re

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex(text: object) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def pm(text: str) -> str:
    return text.replace("±", r"$\pm$")


def bundle_url(base_url: str, uuid: str) -> str:
    return f"{base_url.rstrip('/')}/bundles/{uuid}"


def plain(caption: str) -> str:
    """A LaTeX caption as plain text (Markdown, provenance): common macros to their characters."""
    text = re.sub(r"\\pm\b\s*", "±", caption)
    for a, b in ((r"\%", "%"), (r"\&", "&"), (r"\_", "_"), (r"\#", "#"), (r"\$", "\0"),
                 ("---", "—"), ("--", "–"), ("~", " "), (r"\times", "×"), (r"\leq", "≤"), (r"\geq", "≥")):
        text = text.replace(a, b)
    text = re.sub(r"\\[A-Za-z]+\*?\{([^{}]*)\}", r"\1", text)  # \textbf{x}, \emph{x} -> x
    text = re.sub(r"\\[A-Za-z]+\*?\s*", "", text)
    return text.replace("$", "").replace("{", "").replace("}", "").replace("\0", "$")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def csv_text(text: str) -> str:
    """A label in an exported CSV. Labels come from bundles' files (anyone's runs, pulled bundles): one
    starting with = + - @ (or tab, CR) is a formula a spreadsheet runs on opening, so it gets OWASP's
    ' prefix; a plain number (-0.5, +3) stays a number. A leading ' is doubled, so every label has one
    CSV text and verify can tell them apart."""
    if text.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
