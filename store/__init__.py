"""The write side's persistence: the Postgres event store and the command handler."""
