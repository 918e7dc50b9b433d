"""Text for LaTeX and back: escaping, the ± macro, a caption as plain text, bundle links."""

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
