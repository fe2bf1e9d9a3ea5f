"""Why a table drifted: ``rules`` groups differences and names their likely cause (pure, no
Django); ``report`` reads a job's or a table's differences from the ledger and asks it."""
