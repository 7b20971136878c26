"""Where piked and pikectl look by default (one place; pikectl imports nothing else here,
so reading it costs a CLI call nothing)."""

DEFAULT_CONFIG = "/etc/pike/pike.toml"
DEFAULT_SOCKET = "/run/pike/pike.sock"  # [daemon] control_socket
