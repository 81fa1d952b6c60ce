"""Maintenance jobs and their scheduler: leases, compaction, snapshot expiry, orphan removal, configuration and job records."""
