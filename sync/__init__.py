"""The one clock: stamping of frames, audio and vitals, and vitals-as-of-a-frame lookups."""
