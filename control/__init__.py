"""Session control: the recording state machine and the local control socket."""
