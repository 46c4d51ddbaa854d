"""The fleet: many GPM hosts in one view, read from Prometheus (GPM never fans out itself)."""
