"""The pure domain: models, ids and hashing, chain rules, redaction. No I/O here."""
