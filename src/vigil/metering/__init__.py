"""The metering domain."""
