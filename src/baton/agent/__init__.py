"""The coding agent: a model provider (any OpenAI-compatible endpoint), tools confined to the
repository, the turn loop that records every message in the session, and slash commands."""
