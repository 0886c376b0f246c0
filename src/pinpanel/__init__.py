"""pinpanel: a Raspberry Pi's GPIO pins on the network, safely and durably."""

__version__ = "0.1.0"
