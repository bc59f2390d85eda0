"""The processors written in OTTL: `transform` and `filter`, and what they share (`groups`)."""
