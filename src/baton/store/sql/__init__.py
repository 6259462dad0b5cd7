"""The SQL stores: what SQLite and PostgreSQL do alike (common.py, over a dialect.py), and
each backend's own part (sqlite.py, postgres.py); rows.py maps rows to objects and back."""
