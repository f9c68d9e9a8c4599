"""The web monitor served at /ui."""
