"""One exception family for pinpanel, in the manner of gpiozero's ``exc`` module.

Each leaf also subclasses the builtin a caller would expect (a bad pin name is also a
``ValueError``), so code that knows nothing of pinpanel still catches the right thing.
Adapters (HTTP, MQTT, CLI) map these to statuses, topics and exit codes; the core never
decides how an error is presented.
"""

from __future__ import annotations


class PinpanelError(Exception):
    """Root of every error pinpanel raises on purpose."""


# -- configuration -----------------------------------------------------------------------


class ConfigError(PinpanelError, ValueError):
    """The configuration file is unreadable or invalid; ``problems`` lists every fault."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))


# -- pins and the board ------------------------------------------------------------------


class PinError(PinpanelError):
    """Base for errors about one pin."""


class UnknownPinError(PinError, KeyError):
    """No configured pin has that BCM number or id."""

    def __init__(self, ref: object) -> None:
        self.ref = ref
        super().__init__(f"no configured pin {ref!r}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PinModeError(PinError, TypeError):
    """The command does not fit the pin's mode (switching an input, pulsing nothing)."""


class PinValueError(PinError, ValueError):
    """A command's argument is out of range (a pulse of 0 ms, an unknown action)."""


class UnknownNameError(PinpanelError, KeyError):
    """No configured group, scene, schedule or rule has that id (``kind`` says which)."""

    def __init__(self, kind: str, ref: object) -> None:
        self.kind, self.ref = kind, ref
        super().__init__(f"no {kind} {ref!r}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class AutomationError(PinpanelError, ValueError):
    """A schedule or rule sent over the API is invalid; ``problems`` lists every fault."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class AutomationConflictError(PinpanelError, LookupError):
    """The edit conflicts: the id is taken, or the item is defined in the config file."""


class SimulationOnlyError(PinError, LookupError):
    """Driving an input by hand exists only on the simulated board."""


# -- hardware ------------------------------------------------------------------------------


class HardwareError(PinpanelError, OSError):
    """The GPIO backend failed: no chip, no permission, library missing."""


class BackendUnavailableError(HardwareError):
    """The requested GPIO backend cannot be used on this machine."""


# -- storage -------------------------------------------------------------------------------


class StoreError(PinpanelError, OSError):
    """The state database could not be opened or written."""


class StoreCorruptError(StoreError):
    """The state database is damaged; pinpanel refuses to start over it."""


class StoreVersionError(StoreError):
    """The state database was written by a newer pinpanel than this one."""


class BackupError(PinpanelError, ValueError):
    """A backup archive is damaged, truncated, not pinpanel's, or cannot be restored."""


# -- security --------------------------------------------------------------------------------


class AuthError(PinpanelError):
    """Base for authentication and token management errors."""


class TokenExistsError(AuthError, ValueError):
    """A token with that name already exists."""


class TokenNotFoundError(AuthError, KeyError):
    """No token has that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "token not found"


# -- MQTT ------------------------------------------------------------------------------------


class MqttError(PinpanelError):
    """Base for MQTT bridge errors."""


class MqttPayloadError(MqttError, ValueError):
    """A message on a command topic is not a command pinpanel understands."""


# -- serving ---------------------------------------------------------------------------------


class ServeError(PinpanelError):
    """``pinpanel serve`` cannot start: what it needs is held by someone else."""


class PortInUseError(ServeError, OSError):
    """The server's port is taken by another process; nothing was started or changed."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        super().__init__(f"port {port} on {host or '*'} is already in use by another program; "
                         f"stop it, or choose another port with --port")


class DataDirInUseError(ServeError, OSError):
    """Another pinpanel serves the same data directory; two would corrupt each other."""


class SensorError(PinpanelError):
    """Base of reading-related errors (sensors are observed, never commanded)."""


class UnknownSensorError(SensorError, KeyError):
    """No configured sensor has that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown sensor"


class SensorReadError(SensorError, OSError):
    """One read failed; ``code`` is the short reason readings carry (crc, missing...)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class SensorUnavailableError(SensorError, ImportError):
    """A sensor kind needs a library that is not installed (``pip install pinpanel[sensors]``)."""


class SensorValueError(SensorError, ValueError):
    """A simulated value or reading name that the sensor does not have."""
