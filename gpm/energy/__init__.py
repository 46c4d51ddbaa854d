"""Energy: what each GPU used (the ledger), and who used it (sessions, processes, idle)."""
