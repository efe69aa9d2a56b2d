"""mmw agent package."""
