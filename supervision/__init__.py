"""Keeping a device delivering: the one open → read → lost → back-off → reopen loop that every
camera, microphone, monitor and button runs in, with one set of states and one health record."""
