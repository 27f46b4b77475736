"""crew_durable examples."""
