"""Server-side agent runs (DESIGN §2): workspaces, the executor, the queue, live events."""
