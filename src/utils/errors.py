"""The one exception type for mistakes a user can fix.

Raise ``UserInputError`` with a message that says what is wrong, where, and
what to do. The entry points print that message alone (no traceback unless
``HYDRA_FULL_ERROR=1``) and exit with status 1.
"""


class UserInputError(Exception):
    """A wrong path, a corrupt file, or a configuration that cannot work."""
