"""The daemon: wires sources, vitals, encoders and the store together; the command line."""
