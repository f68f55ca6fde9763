"""Monitor simulators: each writes one family's wire format to a pty or serial port.

They exist so the demo and the tests go through a real serial device path, with the same parser
and link code as a monitor at the bedside.
"""
