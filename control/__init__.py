"""Bedside control: the button and its lamp, gestures, and the local control socket."""
