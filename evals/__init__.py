"""mmw evals package."""
