"""Alerts: ``engine`` turns readings into firing/resolved transitions (pure), ``notify`` delivers
them (log, webhook, desktop)."""
