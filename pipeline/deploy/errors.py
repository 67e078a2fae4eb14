"""The one error type of the deploy code: its message is the one line the user sees."""


class DeployError(Exception):
    """A deploy cannot go on; the message says what to do."""
