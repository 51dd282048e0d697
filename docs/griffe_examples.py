"""Griffe extension of the API reference: ``Example:`` sections read as ``Examples:``, Sphinx roles as code.

The library writes Napoleon's singular ``Example:``; griffe's Google parser knows only the plural and would render
the section as an admonition whose ``>>>`` lines run together into one paragraph. Read as examples, each doctest
renders as a code block, as SB3's API pages show them. Cross-references written as Sphinx roles
(``:class:`~llm_reward.types.Labeler```) render as the name in code (``Labeler``) instead of the raw role.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`(~?)([\w.]+)(\(\))?`")


def _role_as_code(match: re.Match[str]) -> str:
    short, target, call = match.groups()
    return f"`{target.rpartition('.')[2] if short else target}{call or ''}`"


class ExampleSections(griffe.Extension):
    """Rewrite each docstring before it is parsed: ``Example:`` headers to ``Examples:``, roles to code."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_role_as_code, _SINGULAR.sub(r"\1Examples:", obj.docstring.value))
