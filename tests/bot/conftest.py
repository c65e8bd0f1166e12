"""Import discord.py once with its known import-time warning silenced.

discord.py imports the standard library's ``audioop`` for voice, which this bot never uses;
Python 3.11+ warns that ``audioop`` is deprecated, and the suite turns warnings into errors.
Only that one warning, only for that import.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord  # noqa: F401
