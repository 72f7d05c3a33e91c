"""The pure core: commands, events, states and deciders. Imports only the standard library."""
