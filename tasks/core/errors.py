"""The one error type for failures the user can fix."""


class AmiError(Exception):
    """A user-facing failure: its message is one line that names the file,
    image or key at fault and says what to do. Shown without a traceback."""
