"""The operator's tools, above the daemon: the command line, doctor, devices, demo, and the
monitor wiring tools (vitals read, simulate)."""
