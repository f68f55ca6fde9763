"""The session: its on-disk format (layout), its life (state machine, triggers, controller), where it
is kept (directory, retention) and the audit log that outlives it."""
