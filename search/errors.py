"""Domain errors. The library raises these; the CLI and the HTTP API translate them at the edges."""


class MMSearchError(Exception):
    """Base class of every error mmsearch raises on purpose."""


class ConfigError(MMSearchError):
    """A setting or argument is invalid."""


class ModelUnavailableError(MMSearchError):
    """Model weights cannot be loaded (not downloadable, missing file, unknown name)."""


class ModelMismatchError(MMSearchError):
    """An index was made by another model than the one asked for."""


class IndexStateError(MMSearchError):
    """An index folder is missing, unreadable or of an unsupported version."""


class InvalidQueryError(MMSearchError):
    """A query is empty or malformed."""


class NotFoundError(MMSearchError):
    """An item or segment id is not in the catalog."""


class MediaError(MMSearchError):
    """A file cannot be decoded as the media it claims to be."""


class MediaTooLargeError(MediaError):
    """A file or image exceeds a configured size limit."""


class BackendError(MMSearchError):
    """A vision-language model backend failed or answered with an error."""


class BackendTimeoutError(BackendError):
    """A vision-language model backend did not answer in time."""


class BusyError(MMSearchError):
    """The index is busy with work that must finish first (an index run is going)."""
