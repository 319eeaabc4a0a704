"""Secrets, read from the environment only (never from the config file), and never echoed."""

from __future__ import annotations

import os

from kobo_tip.errors import SecretMissingError, WeakSecretError

MIN_SECRET_CHARS = 20  # a random 20-character secret is far beyond guessing; "a" is not


def strong_secret(env_name: str, what: str) -> str:
    value = read_secret(env_name, what)
    if len(value) < MIN_SECRET_CHARS:
        raise WeakSecretError(
            f"{env_name} holds {len(value)} characters: {what} needs at least {MIN_SECRET_CHARS}, or it "
            "can be guessed. Make one with 'python -c \"import secrets; print(secrets.token_urlsafe(32))\"'."
        )
    return value


def read_secret(env_name: str, what: str) -> str:
    """Read a secret from the environment variable ``env_name``; never echo its value."""
    value = os.environ.get(env_name, "")
    if not value:
        raise SecretMissingError(
            f"Environment variable {env_name} is not set: it must hold {what} "
            f"(export {env_name}=...; it is never read from the config file)."
        )
    return value
