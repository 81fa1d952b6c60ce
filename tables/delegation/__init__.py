"""Storage access handed to clients for one table: its scope, vended credentials, the remote signer."""
