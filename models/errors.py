"""Errors a person can fix by sending something else: each carries a code and parameters.

The message (`str(exc)`) is one plain line for terminals and logs. Front ends that speak to people
in their own words (the bot) render `code` with `params` from their texts instead; that is what
lets a language be added without touching models/.
"""

from __future__ import annotations


class InputError(ValueError):
    """Unusable input: `code` names the problem (e.g. "image.too_large"), `params` fill in the details."""

    def __init__(self, code: str, message: str, **params):
        super().__init__(message)
        self.code = code
        self.params = params


class UnknownEngine(InputError):
    def __init__(self, name: str, choices: list[str]):
        import difflib

        close = difflib.get_close_matches(name.strip().lower(), choices, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]}?)" if close else ""
        super().__init__("engine.unknown", f"unknown model {name!r}{hint}: choose one of {', '.join(choices)}",
                         name=name, choices=", ".join(choices), closest=close[0] if close else None)
