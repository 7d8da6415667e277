"""The base error for mistakes a user can fix; the CLI prints these as one line instead of a traceback."""


class RewardkitError(Exception):
    """A problem with the user's input or setup, with a message that says what to do next."""
