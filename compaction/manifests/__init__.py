"""Manifests and manifest lists: every format version read and written, merged, and committed as attempts."""
