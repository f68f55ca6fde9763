"""Media layer: camera and audio sources, overlay, privacy masks, encoding, pre-roll and segments."""
