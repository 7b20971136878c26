"""The randomness pike injects into its engines in production."""

import os


def system_random(n: int) -> bytes:
    """Return ``n`` bytes from the kernel CSPRNG (getrandom(2) via os.urandom)."""
    return os.urandom(n)
