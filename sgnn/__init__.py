"""mmw sgnn package."""
