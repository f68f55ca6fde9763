"""Review side: decrypt a session with an identity and export playable media and vitals."""
