"""The web console: server-rendered pages at /console (docs/console.md)."""
