"""mmw workbench package."""
