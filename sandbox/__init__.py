"""mmw sandbox package."""
