"""The daemon: wires sources, vitals, encoders and session control together; systemd glue."""
